//! The login page: the policy's banner above the form.

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

/// The login page for `client_id`, posting back to `/authorize?{query}`.
pub fn login(
    client_id: &str,
    scope: &str,
    banner: &str,
    query: &str,
    error: Option<&str>,
) -> String {
    let banner = if banner.is_empty() {
        String::new()
    } else {
        format!(
            "<div class=\"banner\" role=\"note\"><pre>{}</pre></div>\n",
            escape(banner)
        )
    };
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>\n", escape(e)))
        .unwrap_or_default();
    format!(
        r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Sign in</title>
<style>
body {{ font-family: sans-serif; max-width: 32rem; margin: 3rem auto; }}
.banner {{ border: 2px solid #a00; padding: 0 1rem; margin-bottom: 1.5rem; }}
.banner pre {{ white-space: pre-wrap; font-family: inherit; }}
.error {{ color: #a00; }}
label {{ display: block; margin: .5rem 0; }}
</style></head>
<body>
{banner}<h1>Sign in</h1>
<p><code>{client}</code> asks for <code>{scope}</code>.</p>
{error}<form method="post" action="/authorize?{query}">
<label>User name <input name="username" autocomplete="username" required></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button>
</form>
</body>
</html>
"#,
        client = escape(client_id),
        scope = escape(scope),
        query = escape(query),
    )
}
