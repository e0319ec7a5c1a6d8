//! A second relying party: the `openid-client` npm package (pinned in
//! tests/node/package-lock.json), run by node against the example OpenID
//! Provider over TLS. The script (tests/node/openid_client_rp.mjs) does
//! discovery, the code flow with PKCE, ID-token validation (signature
//! against the JWKS, nonce, and a wrong nonce refused), UserInfo, refresh
//! and RP-initiated logout (which the provider asks the user to confirm:
//! this user agent keeps no cookies), and prints what it saw; this test
//! checks it.

use curfew_e2e::common::write_file;
use curfew_e2e::node::node;
use curfew_e2e::oidc::{Provider, ProviderSpec, TestTls};
use serde_json::Value;

const REDIRECT: &str = "https://127.0.0.1:1/callback";
const BYE: &str = "https://127.0.0.1:1/bye";
const SECRET: &str = "node-rp-secret-0123456789";

#[test]
fn openid_client_discovers_signs_in_refreshes_and_logs_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = write_file(
        dir.path(),
        "policy.yaml",
        &format!(
            "version: 1\n\
             session:\n  timeout: {{ default: 5m, min: 1m, max: 1h }}\n  max_duration: 1h\n  inactivity: 10m\n  warn_before: 2m\n\
             banner: {{ text: \"Authorized use only.\" }}\n\
             store: {{ backend: sqlite, path: {}/state.db }}\n",
            dir.path().display()
        ),
    );
    let tls = TestTls::create(dir.path());
    let op = Provider::start(
        &policy,
        dir.path(),
        &ProviderSpec {
            users: vec!["alice:wonderland:staff".into()],
            clients: vec![format!("rp,{REDIRECT},{SECRET}")],
            post_logout: vec![format!("rp={BYE}")],
            tls: Some((tls.cert.clone(), tls.key.clone())),
            ..Default::default()
        },
    );
    let out = node("openid_client_rp.mjs")
        .env("ISSUER", &op.issuer)
        .env("CLIENT_ID", "rp")
        .env("CLIENT_SECRET", SECRET)
        .env("REDIRECT_URI", REDIRECT)
        .env("POST_LOGOUT_URI", BYE)
        .env("USERNAME", "alice")
        .env("PASSWORD", "wonderland")
        .env("NODE_EXTRA_CA_CERTS", &tls.ca)
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "openid-client failed: {}\nprovider log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        op.log_text()
    );
    let r: Value = serde_json::from_slice(
        out.stdout
            .split(|b| *b == b'\n')
            .find(|l| l.starts_with(b"{"))
            .expect("a JSON line"),
    )
    .expect("JSON");
    assert_eq!(r["issuer"], op.issuer.as_str());
    assert_eq!(r["alg"][0], "ES256");
    assert_eq!(r["banner"], "Authorized use only.");
    let c = &r["claims"];
    assert_eq!(c["sub"], "alice");
    assert_eq!(c["aud"], "rp");
    let sid = c["sid"].as_str().expect("sid");
    assert_eq!(sid.len(), 32);
    assert!(c["auth_time"].as_i64().is_some());
    assert!(c["nonce"].as_str().is_some_and(|n| !n.is_empty()));
    assert_eq!(c["curfew_banner"], "Authorized use only.");
    let wrong = r["wrongNonceError"].as_str().unwrap_or_default();
    assert!(wrong.contains("nonce"), "a wrong nonce is refused: {wrong}");
    assert_eq!(r["userinfo"]["sub"], "alice");
    assert_eq!(r["userinfo"]["groups"][0], "staff");
    assert_eq!(
        r["refreshedClaims"]["sid"], sid,
        "refresh keeps the session"
    );
    assert_eq!(r["refreshedClaims"]["auth_time"], c["auth_time"]);
    assert_eq!(r["refreshedAccessTokenDiffers"], true);
    // No cookie of the provider's own login in this user agent: the
    // provider asks before it signs anyone out, and the confirmation works.
    assert_eq!(r["logoutConfirmationAsked"], true);
    assert_eq!(r["logoutStatus"], 302);
    assert_eq!(r["logoutLocation"], format!("{BYE}?state=bye").as_str());
    assert_eq!(r["refreshAfterLogout"], "invalid_grant", "{r}");
}
