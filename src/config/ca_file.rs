//! [`CaFile`]: a profile's `ca_file`, read when the config is loaded.
//!
//! The file is read and checked once per load, not per connection or call: every
//! client of a loaded profile (the broker's logins, the gateway's calls, the CLI's
//! checks) then trusts the same certificates, and a file renewed under a running
//! agent takes effect at a reload, for all of them at once. A file that cannot be
//! used is not a config error (the rest of the config still loads): it is kept as
//! the reason this profile cannot reach Looker, and a reload that finds it so keeps
//! what an earlier load read ([`CaFile::keep_earlier_if_unusable`]).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde::{Deserialize, Deserializer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The certificates of a CA file, each usable as a trust anchor.
pub type CaCerts = Arc<[CertificateDer<'static>]>;

/// A profile's `ca_file`: its path, and the certificates read from it at load time
/// (or why none could be). Two reads are equal when path and certificates are.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CaFile {
    path: PathBuf,
    certs: Result<CaCerts, String>,
}

impl CaFile {
    /// Reads and checks the PEM file at `path`. Never fails: a file that cannot be
    /// used keeps the reason, for the clients that would need it to report.
    pub fn read(path: impl Into<PathBuf>) -> CaFile {
        let path = path.into();
        let certs = read_certs(&path).map(Arc::from);
        CaFile { path, certs }
    }

    /// The file's path, as configured.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The certificates, or why the file cannot be used (the message names it).
    pub fn certs(&self) -> Result<&CaCerts, &str> {
        self.certs.as_ref().map_err(String::as_str)
    }

    /// At a reload: when this read of the file cannot be used but `earlier` (the same
    /// path, read at the load before) could, takes the earlier certificates, since
    /// tokens got with them must stay usable and revocable. Returns why this read
    /// could not be used when it did so, for the log.
    pub fn keep_earlier_if_unusable(&mut self, earlier: &CaFile) -> Option<String> {
        match (&self.certs, &earlier.certs) {
            (Err(why), Ok(_)) if self.path == earlier.path => {
                let why = why.clone();
                *self = earlier.clone();
                Some(why)
            }
            _ => None,
        }
    }
}

impl std::fmt::Debug for CaFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The certificates themselves are long and public: their count says enough.
        let certs = match &self.certs {
            Ok(c) => format!("{} certificate(s)", c.len()),
            Err(why) => why.clone(),
        };
        f.debug_struct("CaFile").field("path", &self.path).field("certs", &certs).finish()
    }
}

/// Deserialized from the path in the config, and read there and then. A relative path
/// is refused before anything is read: relative to what? lookerctl and the agent (under
/// systemd, in /) would each read another file.
impl<'de> Deserialize<'de> for CaFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<CaFile, D::Error> {
        let path = PathBuf::deserialize(d)?;
        if !path.is_absolute() {
            return Err(serde::de::Error::custom(format!(
                "ca_file {path:?} is not an absolute path; write it in full (`lookerctl profile add --ca-file` does)"
            )));
        }
        Ok(CaFile::read(path))
    }
}

/// The largest CA file read: a whole public root bundle is about 220 KB.
const MAX_CA_FILE_BYTES: u64 = 4 << 20;

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let fix = "fix the file (a running agent reads it again at `systemctl --user reload looker-agent`)";
    let pem =
        read_bounded(path).map_err(|e| format!("cannot read ca_file {}: {e}; {fix}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("ca_file {} holds no usable PEM certificate: {e}; {fix}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("ca_file {} holds no PEM certificate; {fix}", path.display()));
    }
    // The check that adding them to a root store makes, made now so that a file that
    // loads is one every client can use.
    let mut roots = rustls::RootCertStore::empty();
    for c in &certs {
        roots.add(c.clone()).map_err(|e| {
            format!(
                "ca_file {}: a certificate in it cannot serve as a trust anchor ({e}); {fix}",
                path.display()
            )
        })?;
    }
    Ok(certs)
}

/// The file's bytes, if it is a regular file of at most [`MAX_CA_FILE_BYTES`]. Opened
/// without blocking, so that a FIFO named by mistake cannot stall a config load.
fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, Read as _};
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    if !file.metadata()?.is_file() {
        return Err(Error::other("not a regular file"));
    }
    let mut pem = Vec::new();
    file.take(MAX_CA_FILE_BYTES + 1).read_to_end(&mut pem)?;
    if pem.len() as u64 > MAX_CA_FILE_BYTES {
        return Err(Error::other(format!("larger than {MAX_CA_FILE_BYTES} bytes, which no CA bundle is")));
    }
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    fn fifo(dir: &Path) -> PathBuf {
        let p = dir.join("fifo.pem");
        rustix::fs::mkfifoat(rustix::fs::CWD, &p, rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR).unwrap();
        p
    }

    #[test]
    fn a_good_file_gives_its_certificates_and_a_bad_one_says_what_to_fix() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("ca.pem");
        std::fs::write(&f, ca_pem() + &ca_pem()).unwrap();
        assert_eq!(CaFile::read(&f).certs().unwrap().len(), 2);

        let missing = CaFile::read(dir.path().join("none.pem"));
        let why = missing.certs().unwrap_err();
        assert!(why.starts_with("cannot read ca_file") && why.contains("none.pem"), "{why}");
        assert!(why.contains("systemctl --user reload looker-agent"), "{why}");

        // A folder, a FIFO (nobody writes to it: the read must not wait) and a huge file.
        for (odd, what) in
            [(dir.path().to_path_buf(), "not a regular file"), (fifo(dir.path()), "not a regular file")]
        {
            let why = CaFile::read(&odd).certs().unwrap_err().to_string();
            assert!(why.starts_with("cannot read ca_file") && why.contains(what), "{why}");
        }
        let huge = dir.path().join("huge.pem");
        std::fs::File::create(&huge).unwrap().set_len(MAX_CA_FILE_BYTES + 1).unwrap();
        let why = CaFile::read(&huge).certs().unwrap_err().to_string();
        assert!(why.contains("larger than"), "{why}");

        std::fs::write(&f, "not a certificate").unwrap();
        let why = CaFile::read(&f).certs().unwrap_err().to_string();
        assert!(why.contains("holds no PEM certificate"), "{why}");
        let garbled = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        std::fs::write(&f, garbled).unwrap();
        let why = CaFile::read(&f).certs().unwrap_err().to_string();
        assert!(why.contains("cannot serve as a trust anchor"), "{why}");
    }

    #[test]
    fn a_reload_keeps_earlier_certificates_only_for_an_unusable_read_of_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("ca.pem");
        std::fs::write(&f, ca_pem()).unwrap();
        let good = CaFile::read(&f);

        std::fs::write(&f, ca_pem()).unwrap();
        let mut renewed = CaFile::read(&f);
        assert_eq!(renewed.keep_earlier_if_unusable(&good), None);
        assert_ne!(renewed, good, "a renewed file is taken as it is");

        std::fs::remove_file(&f).unwrap();
        let mut gone = CaFile::read(&f);
        let why = gone.keep_earlier_if_unusable(&good).unwrap();
        assert!(why.contains("cannot read ca_file"), "{why}");
        assert_eq!(gone, good);

        // Another file, or an earlier read that was unusable too: nothing to keep.
        let mut other = CaFile::read(dir.path().join("other.pem"));
        assert_eq!(other.keep_earlier_if_unusable(&good), None);
        assert!(other.certs().is_err());
        let mut again = CaFile::read(&f);
        assert_eq!(again.keep_earlier_if_unusable(&CaFile::read(&f)), None);
        assert!(again.certs().is_err());
    }

    #[test]
    fn it_is_read_when_the_profile_is_parsed() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("ca.pem");
        std::fs::write(&f, ca_pem()).unwrap();
        let p: crate::config::Profile =
            toml::from_str(&format!("base_url = \"https://a.example\"\nca_file = {:?}", f)).unwrap();
        std::fs::remove_file(&f).unwrap();
        let ca = p.ca_file.unwrap();
        assert_eq!(ca.path(), f);
        assert_eq!(ca.certs().unwrap().len(), 1);
    }
}
