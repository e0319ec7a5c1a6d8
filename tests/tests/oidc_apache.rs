//! One revoke ends SSH and web sessions, on a real web application:
//! Apache with mod_auth_openidc (Debian's `apache2` and
//! `libapache2-mod-auth-openidc`) protects a page, signing in through the
//! example OpenID Provider over TLS, with the provider's back-channel
//! logout pointed at mod_auth_openidc's logout endpoint. The same user has
//! a live SSH session on a loopback sshd with the PAM module and the
//! enforcer (tests/src/enforce.rs). `curfew revoke user U` must end both:
//! the web session without any request of the user in between (the
//! provider's logout token reaches mod_auth_openidc, whose next answer for
//! the page is a redirect to the login), the SSH session by the enforcer.
//!
//! Apache runs from its own binary with a config this test writes into a
//! temp dir (`Listen 127.0.0.1:PORT`, `-X`, a PID file), and is stopped by
//! its PID. Root only (sshd, a throwaway user, Apache's `User www-data`).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use curfew_e2e::common::{wait_for, ChildGuard};
use curfew_e2e::enforce::EnforceFixture;
use curfew_e2e::oidc::{hidden_fields, Provider, ProviderSpec, TestTls};
use curfew_e2e::sshd::free_port;

const APACHE: &str = "/usr/sbin/apache2";
const MODULES: &str = "/usr/lib/apache2/modules";
const SECRET: &str = "apache-secret-0123456789";
const PAGE: &str = "curfew protected page";

/// Apache in the foreground (`-X`), stopped by PID: SIGTERM, then SIGKILL.
struct Apache {
    child: ChildGuard,
    dir: std::path::PathBuf,
}

impl Apache {
    fn start(dir: &Path, port: u16, issuer: &str, ca: &Path) -> Apache {
        std::fs::create_dir_all(dir.join("htdocs/protected")).expect("mkdir htdocs");
        std::fs::write(dir.join("htdocs/protected/index.html"), PAGE).expect("write page");
        std::fs::copy(ca, dir.join("ca.pem")).expect("copy CA");
        // Apache's children run as www-data: it must read the pages and the CA.
        for p in [
            dir.to_path_buf(),
            dir.join("htdocs"),
            dir.join("htdocs/protected"),
        ] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        for p in [dir.join("htdocs/protected/index.html"), dir.join("ca.pem")] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        }
        let d = dir.display();
        let conf = format!(
            r#"ServerRoot "{d}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile "{d}/apache.pid"
DefaultRuntimeDir "{d}"
Mutex file:{d} default
ErrorLog "{d}/error.log"
LogLevel warn auth_openidc:info
User www-data
Group www-data
LoadModule mpm_event_module {MODULES}/mod_mpm_event.so
LoadModule authz_core_module {MODULES}/mod_authz_core.so
LoadModule authn_core_module {MODULES}/mod_authn_core.so
LoadModule authz_user_module {MODULES}/mod_authz_user.so
LoadModule auth_openidc_module {MODULES}/mod_auth_openidc.so
DocumentRoot "{d}/htdocs"
<Directory "{d}/htdocs">
  Require all granted
</Directory>
OIDCProviderMetadataURL {issuer}/.well-known/openid-configuration
OIDCCABundlePath "{d}/ca.pem"
OIDCClientID apache
OIDCClientSecret {SECRET}
OIDCRedirectURI http://127.0.0.1:{port}/protected/redirect_uri
OIDCCryptoPassphrase curfew-e2e-{port}
OIDCScope "openid profile"
OIDCPKCEMethod S256
OIDCSessionType server-cache
OIDCCacheType shm
<Location /protected>
  AuthType openid-connect
  Require valid-user
</Location>
"#
        );
        let conf_path = dir.join("apache.conf");
        std::fs::write(&conf_path, conf).expect("write apache.conf");
        let log = std::fs::File::create(dir.join("apache.out")).expect("apache.out");
        let child = Command::new(APACHE)
            .arg("-f")
            .arg(&conf_path)
            .arg("-X")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("start apache2");
        let mut apache = Apache {
            child: ChildGuard::new("apache2", child),
            dir: dir.to_path_buf(),
        };
        let up = wait_for(Duration::from_secs(15), || {
            if let Ok(Some(s)) = apache.child.child.try_wait() {
                panic!("apache2 exited ({s}): {}", apache.logs());
            }
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        assert!(up.is_some(), "apache2 never listened: {}", apache.logs());
        apache
    }

    fn logs(&self) -> String {
        format!(
            "--- apache.out ---\n{}\n--- error.log ---\n{}",
            std::fs::read_to_string(self.dir.join("apache.out")).unwrap_or_default(),
            std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
        )
    }
}

impl Drop for Apache {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.pid() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let gone = wait_for(Duration::from_secs(5), || {
            matches!(self.child.child.try_wait(), Ok(Some(_))).then_some(())
        });
        if gone.is_none() {
            eprintln!("apache2 did not stop on SIGTERM; killing it");
        }
        // ChildGuard's drop kills (if still running) and reaps.
    }
}

/// Signs in through Apache: the page sends the browser to the provider,
/// the login form is filled in, and the browser ends on the page.
fn browser_login(b: &reqwest::blocking::Client, page: &str, user: &str, password: &str) -> String {
    let r = b.get(page).send().expect("GET the protected page");
    let login_url = r.url().clone();
    let form = r.text().expect("login page");
    assert!(
        form.contains("<form") && login_url.path() == "/authorize",
        "the page asks for a login at the provider: {login_url}\n{form}"
    );
    let mut fields = hidden_fields(&form, None);
    fields.push(("username".into(), user.into()));
    fields.push(("password".into(), password.into()));
    let r = b
        .post(login_url)
        .form(&fields)
        .send()
        .expect("POST the login form");
    assert_eq!(r.url().as_str(), page, "back on the page after the login");
    assert_eq!(r.status(), 200);
    r.text().expect("page")
}

#[test]
#[ignore = "needs root: sshd, a throwaway user, apache2 as www-data (scripts/test runs it as root)"]
fn curfew_revoke_ends_the_web_session_in_apache_and_the_ssh_session() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fixture = EnforceFixture::start("{ inactivity: 30m }");
    let user = fixture.user.name.clone();
    let password = "web-Pw-1234";
    let dir = tempfile::tempdir().expect("tempdir");
    let tls = TestTls::create(dir.path());
    let port = free_port();
    let page = format!("http://127.0.0.1:{port}/protected/index.html");
    let redirect = format!("http://127.0.0.1:{port}/protected/redirect_uri");
    let op = Provider::start(
        &fixture.sandbox.policy,
        dir.path(),
        &ProviderSpec {
            users: vec![format!("{user}:{password}")],
            clients: vec![format!("apache,{redirect},{SECRET}")],
            backchannel: vec![format!("apache={redirect}?logout=backchannel")],
            tls: Some((tls.cert.clone(), tls.key.clone())),
            ..Default::default()
        },
    );
    let apache = Apache::start(&dir.path().join("apache"), port, &op.issuer, &tls.ca);

    // The browser signs in through mod_auth_openidc.
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&tls.ca).expect("CA")).expect("CA");
    let b = reqwest::blocking::Client::builder()
        .add_root_certificate(ca)
        .tls_built_in_root_certs(false)
        .cookie_store(true)
        .build()
        .expect("browser");
    let body = browser_login(&b, &page, &user, password);
    assert!(
        body.contains(PAGE),
        "the protected page: {body}\n{}\n{}",
        apache.logs(),
        op.log_text()
    );
    // Signed in: the page answers without a detour.
    let again = b.get(&page).send().expect("GET page");
    assert_eq!(again.url().as_str(), page);
    assert!(again.text().expect("page").contains(PAGE));

    // The same user's SSH session.
    let mut shell = fixture.login();
    assert!(shell.answers(Duration::from_secs(10)));

    // One revoke.
    let revoked = Instant::now();
    fixture.curfew(&["revoke", "user", &user, "--reason", "e2e"]);
    // The provider's logout token reaches mod_auth_openidc (no request of
    // the user in between): wait for its delivery, at most 2 s.
    let delivered = wait_for(Duration::from_secs(2), || {
        op.log_text()
            .lines()
            .find(|l| l.contains("back-channel logout of session") && l.contains("\"apache\""))
            .map(str::to_owned)
    });
    let delivered = delivered.unwrap_or_else(|| {
        panic!(
            "no back-channel logout within 2 s of the revoke\n{}\n{}",
            op.log_text(),
            apache.logs()
        )
    });
    eprintln!(
        "revoke -> logout token delivered: within {:?}: {delivered}",
        revoked.elapsed()
    );
    assert!(
        delivered.ends_with("HTTP 200"),
        "{delivered}\n{}",
        apache.logs()
    );
    // Now the page asks for a new login: a redirect to the provider, whose
    // SSO session was revoked too, so the login form is shown.
    let r = b.get(&page).send().expect("GET the page after the revoke");
    assert_eq!(
        r.url().path(),
        "/authorize",
        "the page asks for a new login: {}",
        r.url()
    );
    let text = r.text().expect("login page");
    assert!(text.contains("<form"), "{text}");

    // And the SSH session is ended by the enforcer.
    let ended = wait_for(Duration::from_secs(15), || shell.exited());
    assert!(
        ended.is_some(),
        "the SSH session survived the revoke: {}",
        fixture.logs()
    );
    drop(apache);
}
