//! Helpers of the OIDC suites: the example OAuth2 server and `curfew hook
//! serve`, started on 127.0.0.1 with a free port and stopped by PID.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::{target_dir, ChildGuard};

/// A built example of curfew-oidc (`target/<profile>/examples/NAME`).
/// Panics with a hint if it is missing.
pub fn example_bin(name: &str) -> PathBuf {
    let p = target_dir().join("examples").join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --all-targets` first (scripts/test does)",
        p.display()
    );
    p
}

/// Spawns `cmd`, whose first line on stdout ends with `http://ADDR` (or
/// `https://ADDR`), and
/// returns the guard and that URL. Its stderr goes to `stderr`, which the
/// panic message quotes if the server does not come up.
pub fn spawn_listening(mut cmd: Command, name: &str, stderr: &Path) -> (ChildGuard, String) {
    let err = std::fs::File::create(stderr).expect("create stderr file");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let guard = ChildGuard::new(name, child);
    let mut line = String::new();
    // The server prints this line once it is bound; EOF means it exited.
    let _ = BufReader::new(stdout).read_line(&mut line);
    let Some(i) = line.find("http://").or_else(|| line.find("https://")) else {
        panic!(
            "{name} did not start: stdout {line:?}, stderr:\n{}",
            std::fs::read_to_string(stderr).unwrap_or_default()
        );
    };
    let url = line[i..].trim().to_owned();
    (guard, url)
}

/// A test certificate authority and a server certificate it signed for
/// `127.0.0.1` and `localhost`, written as PEM files into a directory.
pub struct TestTls {
    /// The CA certificate (what clients trust).
    pub ca: PathBuf,
    /// The server certificate.
    pub cert: PathBuf,
    /// The server certificate's private key.
    pub key: PathBuf,
}

impl TestTls {
    /// Makes the CA and the certificate in `dir` (rcgen, ECDSA P-256).
    pub fn create(dir: &Path) -> TestTls {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "curfew test CA");
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
        let key = KeyPair::generate().expect("server key");
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("server params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "127.0.0.1");
        let cert = params
            .signed_by(&key, &ca, &ca_key)
            .expect("server certificate");
        let tls = TestTls {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        };
        std::fs::write(&tls.ca, ca.pem()).expect("write ca.pem");
        std::fs::write(&tls.cert, cert.pem()).expect("write server.pem");
        std::fs::write(&tls.key, key.serialize_pem()).expect("write server.key");
        tls
    }
}

/// A request a [`Receiver`] got.
#[derive(Debug, Clone)]
pub struct Received {
    /// The request line, e.g. `POST /backchannel HTTP/1.1`.
    pub request_line: String,
    /// The body.
    pub body: String,
    /// When it arrived.
    pub at: std::time::Instant,
}

/// A minimal HTTP endpoint on 127.0.0.1 (a relying party's back-channel
/// logout URI): answers every request `200` and keeps what it got.
pub struct Receiver {
    /// Its URL (`http://127.0.0.1:PORT/backchannel`).
    pub url: String,
    got: std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
}

impl Receiver {
    /// Starts listening (a thread that lives as long as the test binary).
    pub fn start() -> Receiver {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        let port = listener.local_addr().expect("addr").port();
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Headers, then Content-Length bytes of body.
                let (head_end, length) = loop {
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => break (None, 0),
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (Some(i + 4), length);
                    }
                };
                let Some(start) = head_end else { continue };
                while buf.len() < start + length {
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&buf).into_owned();
                let request_line = text.lines().next().unwrap_or_default().to_owned();
                let body = String::from_utf8_lossy(&buf[start.min(buf.len())..]).into_owned();
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(Received {
                        request_line,
                        body,
                        at: std::time::Instant::now(),
                    });
            }
        });
        Receiver {
            url: format!("http://127.0.0.1:{port}/backchannel"),
            got,
        }
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The `logout_token` form fields received so far.
    pub fn logout_tokens(&self) -> Vec<(String, std::time::Instant)> {
        self.received()
            .into_iter()
            .filter_map(|r| {
                url_form(&r.body)
                    .into_iter()
                    .find(|(k, _)| k == "logout_token")
                    .map(|(_, v)| (v, r.at))
            })
            .collect()
    }
}

/// Decodes an `application/x-www-form-urlencoded` body.
pub fn url_form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a test's OpenID Provider is started with.
#[derive(Default)]
pub struct ProviderSpec {
    /// `--user` values.
    pub users: Vec<String>,
    /// `--client` values.
    pub clients: Vec<String>,
    /// `--backchannel-logout` values.
    pub backchannel: Vec<String>,
    /// `--post-logout-redirect` values.
    pub post_logout: Vec<String>,
    /// Serve TLS with these files.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `--clock-offset-file`.
    pub clock_offset_file: Option<PathBuf>,
}

/// The example OpenID Provider, running.
pub struct Provider {
    /// Stops it by PID when dropped.
    pub guard: ChildGuard,
    /// Its issuer URL.
    pub issuer: String,
    /// Its stderr file (the back-channel deliveries are logged there).
    pub log: PathBuf,
}

impl Provider {
    /// Starts `oidc_server` on 127.0.0.1 with a free port, for `policy`,
    /// logging into `dir/provider.err`.
    pub fn start(policy: &Path, dir: &Path, spec: &ProviderSpec) -> Provider {
        let mut cmd = Command::new(example_bin("oidc_server"));
        cmd.arg("--policy").arg(policy).args([
            "--listen",
            "127.0.0.1:0",
            "--watch-interval-ms",
            "100",
        ]);
        for (flag, values) in [
            ("--user", &spec.users),
            ("--client", &spec.clients),
            ("--backchannel-logout", &spec.backchannel),
            ("--post-logout-redirect", &spec.post_logout),
        ] {
            for v in values {
                cmd.arg(flag).arg(v);
            }
        }
        if let Some((cert, key)) = &spec.tls {
            cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
        }
        if let Some(f) = &spec.clock_offset_file {
            cmd.arg("--clock-offset-file").arg(f);
        }
        let log = dir.join("provider.err");
        let (guard, issuer) = spawn_listening(cmd, "oidc_server", &log);
        Provider { guard, issuer, log }
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The hidden fields of the form `<form ... id="ID"` (or of the first form
/// when `id` is `None`) in an HTML page of the example provider, as name
/// and value (HTML entities of the provider's escaping decoded). The
/// provider puts its form tokens (`csrf`) there.
pub fn hidden_fields(html: &str, id: Option<&str>) -> Vec<(String, String)> {
    let start = match id {
        Some(id) => html.find(&format!("id=\"{id}\"")),
        None => html.find("<form"),
    };
    let Some(start) = start else {
        return Vec::new();
    };
    let form = &html[start..];
    let form = &form[..form.find("</form>").unwrap_or(form.len())];
    let attr = |tag: &str, name: &str| -> Option<String> {
        let i = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        let v = &tag[i..];
        Some(
            v[..v.find('"')?]
                .replace("&quot;", "\"")
                .replace("&#39;", "'")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&"),
        )
    };
    form.split("<input")
        .skip(1)
        .map(|t| &t[..t.find('>').unwrap_or(t.len())])
        .filter(|t| t.contains("type=\"hidden\""))
        .filter_map(|t| Some((attr(t, "name")?, attr(t, "value")?)))
        .collect()
}
