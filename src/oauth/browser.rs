//! Opening the consent page in the person's browser.
//!
//! `$BROWSER` first, as the freedesktop and Debian conventions read it: a
//! `:`-separated list of commands tried in order, each split like a shell word list
//! (but run without a shell), `%s` replaced by the URL or the URL appended. Then
//! `xdg-open`. The browser runs detached from lookerctl's terminal output (its
//! standard streams go nowhere), and is reaped when it exits.

use std::process::{Command, Stdio};

/// How the page was opened: the command's program, for the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened(pub String);

/// The commands to try for `url`, from a `$BROWSER` value (`None`: unset).
pub fn commands(browser_var: Option<&str>, url: &str) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = browser_var
        .unwrap_or_default()
        .split(':')
        .filter_map(|entry| shlex::split(entry.trim()))
        .filter(|argv| !argv.is_empty())
        .map(|argv| {
            if argv.iter().any(|a| a.contains("%s")) {
                argv.into_iter().map(|a| a.replace("%s", url)).collect()
            } else {
                argv.into_iter().chain([url.to_string()]).collect()
            }
        })
        .collect();
    out.push(vec!["xdg-open".into(), url.into()]);
    out
}

/// Starts the first command of [`commands`] that can be started; `None` when none
/// could (the caller tells the person to open the URL by hand).
pub fn open(url: &str) -> Option<Opened> {
    let var = std::env::var("BROWSER").ok();
    for argv in commands(var.as_deref(), url) {
        let Some((program, args)) = argv.split_first() else { continue };
        let spawned = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match spawned {
            Ok(mut child) => {
                // Reaped in the background; lookerctl neither waits for nor kills it.
                std::thread::spawn(move || child.wait());
                return Some(Opened(program.clone()));
            }
            Err(e) => tracing::debug!(program = %program, error = %e, "browser command did not start"),
        }
    }
    None
}

/// When this looks like an SSH session, what to tell the person about the redirect.
pub fn ssh_hint(port: u16) -> Option<String> {
    let ssh = ["SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY"].iter().any(|v| std::env::var_os(v).is_some());
    ssh.then(|| {
        format!(
            "this looks like an SSH session: the browser's redirect goes to 127.0.0.1:{port} on the machine the \
             browser runs on. Sign in from a browser there after connecting with port forwarding, e.g. \
             `ssh -L {port}:127.0.0.1:{port} THIS_HOST`, or open the link in a browser on this machine"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browser_lists_placeholders_and_the_fallback() {
        let url = "http://l/auth?a=1&b=2";
        assert_eq!(
            commands(Some("firefox --new-tab:'my browser' --open=%s"), url),
            vec![
                vec!["firefox".to_string(), "--new-tab".into(), url.into()],
                vec!["my browser".to_string(), format!("--open={url}")],
                vec!["xdg-open".to_string(), url.into()],
            ]
        );
        assert_eq!(commands(None, url), vec![vec!["xdg-open".to_string(), url.into()]]);
        assert_eq!(commands(Some(" : "), url).len(), 1);
    }
}
