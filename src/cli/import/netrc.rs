//! `lookerctl import --netrc [PATH]`: a profile and credential set from a netrc
//! file's `machine HOST login CLIENT_ID password SECRET` ([`crate::netrc`]).

use super::{read_ini, FileKind, FileOrigin, Found};
use crate::cli::exit::CliError;
use crate::config_edit::ProfileSettings;
use crate::name::Name;
use crate::netrc::{self, NetrcEntry};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The netrc to read: `path`, or `~/.netrc` when `--netrc` was given without one.
pub(super) fn path_or_default(path: Option<&Path>) -> Result<PathBuf, CliError> {
    if let Some(path) = path {
        return Ok(path.to_path_buf());
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".netrc")),
        None => {
            Err(CliError::usage("HOME is not set: name the netrc file (`lookerctl import --netrc PATH`)"))
        }
    }
}

fn netrc_error(path: &Path, e: netrc::NetrcError) -> CliError {
    CliError::failure(format!("{}: {e}; is it a netrc file?", path.display()))
}

/// The entry for `machine` (any case), else the file's only entry.
fn select(path: &Path, mut entries: Vec<NetrcEntry>, machine: Option<&str>) -> Result<NetrcEntry, CliError> {
    let names =
        |entries: &[NetrcEntry]| entries.iter().map(|e| e.machine.clone()).collect::<Vec<_>>().join(", ");
    match machine {
        Some(m) => match entries.iter().position(|e| e.machine.eq_ignore_ascii_case(m)) {
            Some(i) => Ok(entries.swap_remove(i)),
            None => Err(CliError::unknown(format!(
                "{} has no `machine {m}`{}",
                path.display(),
                if entries.is_empty() { String::new() } else { format!("; it has: {}", names(&entries)) }
            ))),
        },
        None if entries.len() == 1 => Ok(entries.remove(0)),
        None if entries.is_empty() => Err(CliError::failure(format!(
            "{} has no `machine` entry (`default` entries are not imported: a profile needs a host); \
             add `machine HOST login CLIENT_ID password SECRET` to it",
            path.display()
        ))),
        None => Err(CliError::usage(format!(
            "{} has several machines ({}); pick one with --machine HOST",
            path.display(),
            names(&entries)
        ))),
    }
}

/// The profile name a host suggests: its first label (`example` for
/// `example.looker.com`), else `looker`.
fn suggested_name(host: &str) -> String {
    let label = host.split(['.', ':']).next().unwrap_or_default().to_lowercase();
    if Name::is_valid(&label) {
        label
    } else {
        super::ENV_PROFILE_NAME.to_string()
    }
}

/// Reads `path` and picks the entry to import.
pub(super) fn from_netrc(path: &Path, machine: Option<&str>) -> Result<Found, CliError> {
    if let Err(e) = std::fs::metadata(path) {
        return Err(CliError::failure(format!(
            "cannot read {}: {e}; name the netrc file to import (`lookerctl import --netrc PATH`)",
            path.display()
        )));
    }
    let text = Zeroizing::new(read_ini(path).map_err(|e| {
        CliError::new(e.code, e.message.replace("is it a looker.ini?", "is it a netrc file?"))
    })?);
    let entries = netrc::parse(&text).map_err(|e| netrc_error(path, e))?;
    let mut entry = select(path, entries, machine)?;
    let client_id = entry.login.clone().ok_or_else(|| {
        CliError::failure(format!(
            "{}: `machine {}` (line {}) has no login; put the API key's client_id there \
             (`machine HOST login CLIENT_ID password SECRET`)",
            path.display(),
            entry.machine,
            entry.line
        ))
    })?;
    let has_password = entry.password.is_some();
    Ok(Found {
        settings: ProfileSettings::new(format!("https://{}", entry.machine)),
        client_id,
        secret: entry.password.take(),
        default_name: suggested_name(&entry.machine),
        file: Some(FileOrigin {
            kind: FileKind::Netrc,
            path: path.to_path_buf(),
            text,
            section: entry.machine.clone(),
            secret_section: has_password.then(|| entry.machine.clone()),
            secret_line: entry.password_line,
        }),
    })
}

/// `text` without the password of `machine`, and whether a password is still there.
pub(super) fn without_password(text: &str, machine: &str) -> (Zeroizing<String>, bool) {
    let find = |t: &str| {
        netrc::parse(t).ok().and_then(|v| v.into_iter().find(|e| e.machine.eq_ignore_ascii_case(machine)))
    };
    let Some(entry) = find(text) else { return (Zeroizing::new(text.to_string()), true) };
    let new_text = Zeroizing::new(netrc::remove_password(text, &entry));
    let still = find(&new_text).is_none_or(|e| e.password.is_some());
    (new_text, still)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_hosts() {
        assert_eq!(suggested_name("Example.looker.com"), "example");
        assert_eq!(suggested_name("localhost:19999"), "localhost");
        assert_eq!(suggested_name("-x.example"), "looker");
    }
}
