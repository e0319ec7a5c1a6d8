//! The HTML pages: plain server-rendered markup, the policy's banner on
//! top, and on the signed-in pages a small script that warns before the
//! session ends.

use std::collections::HashMap;

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
body { font-family: sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; }
.banner { border: 2px solid #a00; padding: 0 1rem; margin-bottom: 1.5rem; }
.banner pre { white-space: pre-wrap; font-family: inherit; }
.error { color: #a00; }
.notice { color: #060; }
label { display: block; margin: .5rem 0; }
table { border-collapse: collapse; width: 100%; margin: 1rem 0; }
th, td { border-bottom: 1px solid #ccc; padding: .3rem .5rem; text-align: left; font-size: .9rem; }
tr.current { background: #eef6ff; }
section { margin: 1.5rem 0; }
dialog { border: 2px solid #333; padding: 1.5rem; }
"#;

/// The script on every signed-in page: reads the SSO session's deadline
/// claims from `/account/session.json`, opens the dialog `warn_before`
/// ahead of the end (`curfew_warn_at`, on the server's clock), and
/// "Extend session" refreshes the session and moves the deadline.
const SESSION_SCRIPT: &str = r#"
(function () {
  const dialog = document.getElementById('curfew-dialog');
  const ends = document.getElementById('curfew-ends');
  const csrf = document.body.dataset.csrf;
  let timer = null;
  function utc(secs) {
    return new Date(secs * 1000).toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
  }
  function apply(s) {
    const end = Math.min(s.curfew_idle_deadline, s.curfew_absolute_deadline);
    dialog.dataset.deadline = String(end);
    ends.textContent = utc(end);
    const skew = s.now * 1000 - Date.now();
    const wait = s.curfew_warn_at * 1000 - (Date.now() + skew);
    if (timer) clearTimeout(timer);
    timer = setTimeout(function () { if (!dialog.open) dialog.showModal(); }, Math.max(0, wait));
  }
  async function load() {
    const r = await fetch('/account/session.json', { credentials: 'same-origin' });
    if (r.ok) apply(await r.json());
  }
  document.getElementById('curfew-extend').addEventListener('click', async function () {
    const r = await fetch('/account/extend', {
      method: 'POST', credentials: 'same-origin', headers: { 'X-CSRF-Token': csrf }
    });
    if (!r.ok) { location.reload(); return; }
    dialog.close();
    apply(await r.json());
  });
  load();
})();
"#;

/// A page: the banner (if any), `body`, and with `csrf` (signed in) the
/// session-end dialog and its script.
pub fn layout(title: &str, banner: &str, body: &str, csrf: Option<&str>) -> String {
    let banner = if banner.is_empty() {
        String::new()
    } else {
        format!(
            "<div class=\"banner\" role=\"note\"><pre>{}</pre></div>\n",
            escape(banner)
        )
    };
    let (body_attr, dialog) = match csrf {
        Some(c) => (
            format!(" data-csrf=\"{}\"", escape(c)),
            format!(
                r#"<dialog id="curfew-dialog">
<p>Your session ends at <strong id="curfew-ends"></strong>.</p>
<button type="button" id="curfew-extend">Extend session</button>
</dialog>
<script>{SESSION_SCRIPT}</script>
"#
            ),
        ),
        None => (String::new(), String::new()),
    };
    format!(
        r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{title}</title>
<style>{STYLE}</style></head>
<body{body_attr}>
{banner}{body}
{dialog}</body>
</html>
"#,
        title = escape(title),
    )
}

/// The login page, posting to `action` (already a URL path and query),
/// with the form token `csrf`. `client` is the client and scope asking, if
/// any. "Remember me" asks for a persistent login
/// (`session.remember_me`); the `offline_access` scope does not.
pub fn login(
    client: Option<(&str, &str)>,
    banner: &str,
    action: &str,
    error: Option<&str>,
    csrf: &str,
) -> String {
    let asking = client
        .map(|(c, s)| {
            format!(
                "<p><code>{}</code> asks for <code>{}</code>.</p>\n",
                escape(c),
                escape(s)
            )
        })
        .unwrap_or_default();
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>\n", escape(e)))
        .unwrap_or_default();
    let body = format!(
        r#"<h1>Sign in</h1>
{asking}{error}<form method="post" action="{action}" id="login">
<input type="hidden" name="csrf" value="{csrf}">
<label>User name <input name="username" autocomplete="username" required></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<label><input type="checkbox" name="remember_me" value="yes" id="remember-me"> Remember me</label>
<button type="submit">Sign in</button>
</form>"#,
        action = escape(action),
        csrf = escape(csrf),
    );
    layout("Sign in", banner, &body, None)
}

/// A page with one message.
pub fn message(title: &str, text: &str) -> String {
    layout(
        title,
        "",
        &format!("<h1>{}</h1>\n<p>{}</p>", escape(title), escape(text)),
        None,
    )
}

/// Asks the user to confirm a logout (RP-Initiated Logout 1.0, section
/// 2): the request's parameters go along in hidden fields, with the form
/// token `csrf`. `user` is who is signed in in this browser, `client` the
/// application asking.
pub fn confirm_logout(
    params: &HashMap<String, String>,
    csrf: &str,
    user: Option<&str>,
    client: Option<&str>,
) -> String {
    let hidden: String = params
        .iter()
        .filter(|(k, _)| {
            matches!(
                k.as_str(),
                "id_token_hint" | "client_id" | "post_logout_redirect_uri" | "state"
            )
        })
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
                escape(k),
                escape(v)
            )
        })
        .collect();
    let who = match user {
        Some(u) => format!(
            "<p>You are signed in as <strong>{}</strong>.</p>\n",
            escape(u)
        ),
        None => String::new(),
    };
    let asking = match client {
        Some(c) => format!(
            "<p>The application <code>{}</code> asks to sign you out.</p>\n",
            escape(c)
        ),
        None => "<p>A page asks to sign you out.</p>\n".to_owned(),
    };
    layout(
        "Sign out",
        "",
        &format!(
            r#"<h1>Sign out?</h1>
{asking}{who}<form method="post" action="/end_session" id="confirm-logout">
{hidden}<input type="hidden" name="csrf" value="{csrf}">
<button type="submit">Sign out</button>
</form>
<p><a href="/account/sessions">Stay signed in</a></p>"#,
            csrf = escape(csrf)
        ),
        None,
    )
}

/// One row of the sessions table.
pub struct Row {
    /// The curfew session id.
    pub id: String,
    /// `SSH`, `PAM` or `web`.
    pub kind: String,
    /// PAM service or OIDC client.
    pub service: String,
    /// Host.
    pub host: String,
    /// Remote address.
    pub rhost: String,
    /// Start.
    pub started: String,
    /// Last activity.
    pub last_seen: String,
    /// The session this page is viewed in.
    pub current: bool,
}

/// What the sessions page shows.
pub struct SessionsPage<'a> {
    /// The signed-in user.
    pub user: &'a str,
    /// Their live sessions.
    pub rows: Vec<Row>,
    /// The token lifetime in force and where it comes from.
    pub lifetime: String,
    /// The allowed range, `min..max`.
    pub range: String,
    /// A result to show.
    pub notice: Option<String>,
    /// An error to show.
    pub error: Option<String>,
    /// The form token.
    pub csrf: &'a str,
    /// The banner.
    pub banner: &'a str,
}

/// The sessions page: live sessions (SSH and web) with "end this session"
/// and "end all other sessions" behind a confirmation box each, the token
/// lifetime and its form, and a sign-out button.
pub fn sessions(p: &SessionsPage<'_>) -> String {
    let csrf = escape(p.csrf);
    let mut rows = String::new();
    for r in &p.rows {
        let action = if r.current {
            "<em>this session</em>".to_owned()
        } else {
            format!(
                r#"<form method="post" action="/account/sessions/end">
<input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="session" value="{id}">
<label><input type="checkbox" name="confirm" value="yes" required> confirm</label>
<button type="submit">End this session</button></form>"#,
                id = escape(&r.id)
            )
        };
        rows.push_str(&format!(
            "<tr data-session=\"{id}\" data-kind=\"{kind}\"{class}><td>{kind}</td><td>{service}</td><td>{host}</td><td>{rhost}</td><td>{started}</td><td>{last}</td><td>{action}</td></tr>\n",
            id = escape(&r.id),
            kind = escape(&r.kind),
            class = if r.current { " class=\"current\"" } else { "" },
            service = escape(&r.service),
            host = escape(&r.host),
            rhost = escape(&r.rhost),
            started = escape(&r.started),
            last = escape(&r.last_seen),
        ));
    }
    let notice = p
        .notice
        .as_ref()
        .map(|n| format!("<p class=\"notice\" role=\"status\">{}</p>\n", escape(n)))
        .unwrap_or_default();
    let error = p
        .error
        .as_ref()
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>\n", escape(e)))
        .unwrap_or_default();
    let body = format!(
        r#"<h1>Sessions of {user}</h1>
{notice}{error}<section id="sessions">
<table>
<thead><tr><th>Kind</th><th>Service or client</th><th>Host</th><th>Remote address</th><th>Started</th><th>Last activity</th><th></th></tr></thead>
<tbody>
{rows}</tbody>
</table>
<form method="post" action="/account/sessions/end-others" id="end-others">
<input type="hidden" name="csrf" value="{csrf}">
<label><input type="checkbox" name="confirm" value="yes" id="confirm-others" required> I want to end all my other sessions</label>
<button type="submit">End all other sessions</button>
</form>
</section>
<section id="lifetime">
<h2>Token lifetime</h2>
<p>Your token lifetime: <strong id="lifetime-value">{lifetime}</strong>; allowed: <span id="lifetime-range">{range}</span>.</p>
<form method="post" action="/account/lifetime">
<input type="hidden" name="csrf" value="{csrf}">
<label>New lifetime <input name="lifetime" id="lifetime-input" placeholder="e.g. 15m" required></label>
<button type="submit">Set lifetime</button>
</form>
<form method="post" action="/account/lifetime" id="lifetime-default">
<input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="default" value="yes">
<button type="submit">Use the policy default</button>
</form>
</section>
<form method="post" action="/account/logout"><input type="hidden" name="csrf" value="{csrf}"><button type="submit">Sign out</button></form>"#,
        user = escape(p.user),
        lifetime = escape(&p.lifetime),
        range = escape(&p.range),
    );
    layout("Sessions", p.banner, &body, Some(p.csrf))
}
