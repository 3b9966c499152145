//! The HTML of the OAuth consent page and of the error page `/auth` shows
//! instead of redirecting to an app it cannot trust. Plain forms, no
//! styling, so any browser (a headless one in tests) can use them.

use super::oauth::Consent;

/// Escapes text for HTML content and double-quoted attributes.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
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

/// The consent page: who asks, as whom, and an Allow and a Deny button
/// posting to `action`. `auto_click` names a button (`allow`/`deny`) that a
/// script clicks as the page loads.
pub(crate) fn consent(consent: &Consent, action: &str, auto_click: Option<&str>) -> String {
    let a = &consent.authorization;
    let script = match auto_click {
        Some(button) => {
            format!("<script>document.getElementById(\"{}\").click();</script>\n", escape(button))
        }
        None => String::new(),
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Looker emulator: allow access?</title></head>\n<body>\n\
         <h1>Allow {guid} to use Looker as {name}?</h1>\n\
         <p id=\"who\">Signed in as {name} &lt;{email}&gt; (user {id}).</p>\n\
         <p>The application <code id=\"client\">{guid}</code> asks for the scope \
         <code>cors_api</code>; the answer goes back to <code id=\"redirect\">{redirect}</code>.</p>\n\
         <form id=\"consent\" method=\"post\" action=\"{action}\">\n\
         <input type=\"hidden\" name=\"consent\" value=\"{consent_id}\">\n\
         <button type=\"submit\" id=\"allow\" name=\"decision\" value=\"allow\">Allow</button>\n\
         <button type=\"submit\" id=\"deny\" name=\"decision\" value=\"deny\">Deny</button>\n\
         </form>\n{script}</body></html>\n",
        guid = escape(&a.client_guid),
        name = escape(&a.user.display_name),
        email = escape(&a.user.email),
        id = escape(&a.user.id),
        redirect = escape(&a.redirect_uri),
        action = escape(action),
        consent_id = escape(&consent.id),
    )
}

/// The page shown instead of a redirect.
pub(crate) fn error(message: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Looker emulator: sign-in error</title></head>\n<body>\n\
         <h1>OAuth sign-in error</h1>\n<p id=\"error\">{}</p>\n</body></html>\n",
        escape(message)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
        assert!(error("<script>").contains("&lt;script&gt;"));
    }
}
