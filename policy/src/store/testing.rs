//! Test support: a private `redis-server` for one test (feature `testing`).
//!
//! The server listens on a unix socket in a fresh temporary directory (or on
//! a loopback port), keeps nothing on disk, and is killed by its PID when the
//! guard drops, whatever the test did in between. The binary is
//! `$REDIS_SERVER` if set, else `redis-server` from `PATH`.
//!
//! ```no_run
//! use curfew_policy::store::testing::RedisServer;
//!
//! let server = RedisServer::start()?;
//! let url = server.url(); // unix:///tmp/.../redis.sock
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a starting server may take to answer its first PING.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Where a test server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A unix socket (TCP disabled with `--port 0`).
    Unix(PathBuf),
    /// A port on 127.0.0.1.
    Loopback(u16),
    /// A TLS port on 127.0.0.1 (plain TCP disabled), with a certificate for
    /// `127.0.0.1` and `localhost` signed by the server's own test CA.
    Tls(u16),
}

/// A `redis-server` child process owned by a test.
pub struct RedisServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    listen: Listen,
    password: Option<String>,
}

impl RedisServer {
    /// Starts a server on a unix socket in a new temporary directory.
    pub fn start() -> io::Result<RedisServer> {
        Self::start_with(false, None)
    }

    /// Starts a server on a free port of 127.0.0.1.
    pub fn start_loopback() -> io::Result<RedisServer> {
        Self::start_with(true, None)
    }

    /// Starts a unix-socket server that requires `password` (`requirepass`).
    pub fn start_with_password(password: &str) -> io::Result<RedisServer> {
        Self::start_with(false, Some(password.to_owned()))
    }

    /// Starts a TLS server on a free port of 127.0.0.1 that requires
    /// `password`. Its CA certificate is [`RedisServer::ca_path`]. Needs the
    /// `openssl` command to make the certificates.
    pub fn start_tls(password: &str) -> io::Result<RedisServer> {
        let dir = tempfile::Builder::new().prefix("curfew-redis").tempdir()?;
        make_certificates(dir.path())?;
        let mut server = RedisServer {
            child: None,
            listen: Listen::Tls(free_port()?),
            dir,
            password: Some(password.to_owned()),
        };
        server.spawn()?;
        Ok(server)
    }

    /// The CA certificate that signed a TLS server's certificate.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn start_with(loopback: bool, password: Option<String>) -> io::Result<RedisServer> {
        let dir = tempfile::Builder::new().prefix("curfew-redis").tempdir()?;
        let listen = if loopback {
            Listen::Loopback(free_port()?)
        } else {
            Listen::Unix(dir.path().join("redis.sock"))
        };
        let mut server = RedisServer {
            child: None,
            dir,
            listen,
            password,
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> io::Result<()> {
        let bin = std::env::var_os("REDIS_SERVER").unwrap_or_else(|| "redis-server".into());
        let mut cmd = Command::new(&bin);
        cmd.arg("--bind").arg("127.0.0.1");
        match &self.listen {
            Listen::Unix(sock) => {
                cmd.args(["--port", "0", "--unixsocket"])
                    .arg(sock)
                    .args(["--unixsocketperm", "700"]);
            }
            Listen::Loopback(port) => {
                cmd.arg("--port").arg(port.to_string());
            }
            Listen::Tls(port) => {
                let d = self.dir.path();
                cmd.args(["--port", "0", "--tls-port"])
                    .arg(port.to_string())
                    .arg("--tls-cert-file")
                    .arg(d.join("server.pem"))
                    .arg("--tls-key-file")
                    .arg(d.join("server.key"))
                    .arg("--tls-ca-cert-file")
                    .arg(d.join("ca.pem"))
                    .args(["--tls-auth-clients", "no"]);
            }
        }
        cmd.args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.dir.path().join("redis.log"));
        if let Some(p) = &self.password {
            cmd.arg("--requirepass").arg(p);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot start {}: {e}", Path::new(&bin).display()),
            )
        })?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> io::Result<()> {
        let start = Instant::now();
        loop {
            if self.ping() {
                return Ok(());
            }
            if let Some(c) = self.child.as_mut() {
                if let Some(status) = c.try_wait()? {
                    self.child = None;
                    return Err(io::Error::other(format!(
                        "redis-server exited with {status}; see {}",
                        self.log_path().display()
                    )));
                }
            }
            if start.elapsed() > START_TIMEOUT {
                self.stop();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "redis-server did not answer PING",
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the server answers a PING (with AUTH first if it has a
    /// password); for a TLS server, whether it accepts a TCP connection.
    pub fn ping(&self) -> bool {
        if let Listen::Tls(port) = self.listen {
            return TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok();
        }
        let mut req = String::new();
        if let Some(p) = &self.password {
            req.push_str(&format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{p}\r\n", p.len()));
        }
        req.push_str("PING\r\n");
        let expect: &[u8] = if self.password.is_some() {
            b"+OK\r\n+PONG\r\n"
        } else {
            b"+PONG\r\n"
        };
        let talk = |s: &mut dyn ReadWrite| -> io::Result<bool> {
            s.write_all(req.as_bytes())?;
            let mut got = Vec::new();
            let mut buf = [0u8; 64];
            while got.len() < expect.len() {
                let n = s.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            Ok(got == expect)
        };
        let timeout = Some(Duration::from_secs(2));
        match &self.listen {
            Listen::Unix(p) => UnixStream::connect(p)
                .and_then(|mut s| {
                    s.set_read_timeout(timeout)?;
                    talk(&mut s)
                })
                .unwrap_or(false),
            Listen::Loopback(port) | Listen::Tls(port) => {
                TcpStream::connect((Ipv4Addr::LOCALHOST, *port))
                    .and_then(|mut s| {
                        s.set_read_timeout(timeout)?;
                        talk(&mut s)
                    })
                    .unwrap_or(false)
            }
        }
    }

    /// The URL a store opens: `unix:///…/redis.sock`,
    /// `redis://127.0.0.1:PORT/0` or `rediss://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        match &self.listen {
            Listen::Unix(p) => format!("unix://{}", p.display()),
            Listen::Loopback(port) => format!("redis://127.0.0.1:{port}/0"),
            Listen::Tls(port) => format!("rediss://127.0.0.1:{port}/0"),
        }
    }

    /// The URL with `user` and the server's password in it.
    pub fn url_with_credentials(&self, user: &str) -> String {
        let pass = self.password.as_deref().unwrap_or_default();
        match &self.listen {
            Listen::Unix(p) => format!("redis+unix://{}?user={user}&pass={pass}", p.display()),
            Listen::Loopback(port) => format!("redis://{user}:{pass}@127.0.0.1:{port}/0"),
            Listen::Tls(port) => format!("rediss://{user}:{pass}@127.0.0.1:{port}/0"),
        }
    }

    /// Where it listens.
    pub fn listen(&self) -> &Listen {
        &self.listen
    }

    /// The server's PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// Kills the server (by its PID) and reaps it. Its data is gone: it
    /// keeps nothing on disk.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Listen::Unix(p) = &self.listen {
            let _ = std::fs::remove_file(p);
        }
    }

    /// Starts the server again on the same socket or port.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        self.spawn()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// A test CA and a server certificate for 127.0.0.1 and localhost, made
/// with the `openssl` command in `dir`.
fn make_certificates(dir: &Path) -> io::Result<()> {
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )?;
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let steps: [Vec<&str>; 3] = [
        [
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.pem"],
        ]
        .concat(),
        [
            &["req"][..],
            &ec,
            &["-keyout", "server.key", "-out", "server.csr"],
        ]
        .concat(),
        vec![
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    ];
    for (i, args) in steps.iter().enumerate() {
        let subject = ["/CN=curfew test CA", "/CN=127.0.0.1", ""][i];
        let mut cmd = Command::new("openssl");
        cmd.args(args).current_dir(dir).stdin(Stdio::null());
        if !subject.is_empty() {
            cmd.args(["-days", "2", "-subj", subject]);
        } else {
            cmd.args(["-days", "2"]);
        }
        let out = cmd
            .output()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot run openssl: {e}")))?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "openssl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
    }
    Ok(())
}

fn free_port() -> io::Result<u16> {
    // The port is free when we ask; the server binds it a moment later.
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}
