//! TLS towards Looker: the profile's `ca_file`, and what a failed handshake means.
//!
//! Private Looker instances often run a self-signed certificate made with
//! `openssl req -x509`, which marks it `CA:TRUE`. Curl (`--cacert`) and the Python SDK
//! accept such a certificate when it is named as the CA file; webpki refuses any CA
//! certificate in the end-entity position (`CaUsedAsEndEntity`). [`PinnedCaVerifier`]
//! accepts exactly that case, when the server presents that very certificate, and
//! still checks its validity period and its name.

use crate::config::CaFile;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use std::path::Path;
use std::sync::Arc;

/// Builds the rustls configuration for a profile with a `ca_file`: the machine's roots
/// plus the file's certificates, and the file's own certificates accepted as the
/// server's certificate even when they are CA certificates. Fails only for a file
/// that could not be used when it was read.
pub(crate) fn config_with_ca_file(ca_file: &CaFile) -> Result<rustls::ClientConfig, String> {
    let file_certs = ca_file.certs().map_err(str::to_string)?;
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable system roots are not fatal: the profile names its own CA anyway.
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    // Each was checked as a trust anchor when the file was read.
    roots.add_parsable_certificates(file_certs.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("cannot set up TLS verification: {e}"))?;
    let pinned = file_certs.to_vec();
    let verifier = Arc::new(PinnedCaVerifier { webpki, pinned });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(config)
}

/// webpki's verification, plus: a server certificate that is byte for byte one of the
/// `ca_file` certificates is trusted as such (validity and name still checked).
#[derive(Debug)]
struct PinnedCaVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

/// The signature checks of [`ServerCertVerifier`] (one per TLS version, the same
/// signature), each handed to webpki's verifier as it is.
macro_rules! delegate_to_webpki {
    ($($check:ident),+) => {$(
        fn $check(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.webpki.$check(message, cert, dss)
        }
    )+};
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(e) if self.pinned.iter().any(|p| p.as_ref() == end_entity.as_ref()) => {
                verify_pinned(end_entity, server_name, now).map_err(|pinned_err| match pinned_err {
                    // The pinned path agrees the certificate is fine as such: webpki's own
                    // objection (a chain problem) stands.
                    None => e,
                    Some(p) => p,
                })
            }
            other => other,
        }
    }

    // The handshake signatures are webpki's to check: only the certificate differs.
    delegate_to_webpki!(verify_tls12_signature, verify_tls13_signature);

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Checks a pinned certificate's validity period and name. `Err(None)` when the
/// certificate cannot be read (webpki's error is then the better one to report).
fn verify_pinned(
    cert: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> Result<ServerCertVerified, Option<rustls::Error>> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, parsed) = X509Certificate::from_der(cert.as_ref()).map_err(|_| None)?;
    let secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let validity = parsed.validity();
    let (not_before, not_after) = (validity.not_before.timestamp(), validity.not_after.timestamp());
    let at =
        |t: i64| UnixTime::since_unix_epoch(std::time::Duration::from_secs(u64::try_from(t).unwrap_or(0)));
    if secs < not_before {
        return Err(Some(
            CertificateError::NotValidYetContext { time: now, not_before: at(not_before) }.into(),
        ));
    }
    if secs > not_after {
        return Err(Some(CertificateError::ExpiredContext { time: now, not_after: at(not_after) }.into()));
    }
    let ee = webpki::EndEntityCert::try_from(cert).map_err(|_| None)?;
    ee.verify_is_valid_for_subject_name(server_name).map_err(|e| {
        Some(match e {
            webpki::Error::CertNotValidForName(cx) => {
                CertificateError::NotValidForNameContext { expected: cx.expected, presented: cx.presented }
                    .into()
            }
            _ => CertificateError::NotValidForName.into(),
        })
    })?;
    Ok(ServerCertVerified::assertion())
}

/// The rustls error behind a failed connection, if a TLS problem caused it.
pub(crate) fn rustls_cause<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    super::causes::find::<rustls::Error>(e)
}

/// What to do about a failed TLS handshake, in words; `ca_file` is the profile's.
pub(crate) fn advice(err: &rustls::Error, ca_file: Option<&Path>) -> String {
    let set_ca_file = "if the instance uses a private CA or a self-signed certificate, name it as \
                       ca_file in the profile (`lookerctl profile add NAME --base-url URL --ca-file PATH`)";
    let rustls::Error::InvalidCertificate(cert) = err else {
        return match err {
            rustls::Error::AlertReceived(_) | rustls::Error::PeerIncompatible(_) => {
                "the server refused the TLS handshake; check that base_url names an HTTPS Looker API port"
                    .into()
            }
            rustls::Error::InvalidMessage(_) | rustls::Error::PeerMisbehaved(_) => {
                "the server does not speak TLS as expected; check that base_url's scheme and port are right"
                    .into()
            }
            _ => "the TLS handshake failed".into(),
        };
    };
    match cert {
        CertificateError::UnknownIssuer => match ca_file {
            Some(ca) => format!(
                "the certificate is not signed by the CA in ca_file {} (nor by one this machine trusts); \
                 check that the file holds the instance's CA or its own self-signed certificate \
                 (a fixed file is read at the next reload: `systemctl --user reload looker-agent`)",
                ca.display()
            ),
            None => format!("the certificate is signed by a CA this machine does not trust; {set_ca_file}"),
        },
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "the certificate is not for the host in base_url; use the host name it was issued for".into()
        }
        CertificateError::Expired
        | CertificateError::ExpiredContext { .. }
        | CertificateError::NotValidYet
        | CertificateError::NotValidYetContext { .. } => {
            "the certificate is outside its validity period; renew it on the server, or check this machine's clock"
                .into()
        }
        CertificateError::Revoked => "the certificate has been revoked; the server needs a new one".into(),
        CertificateError::BadEncoding => "the server's certificate cannot be read; it needs a valid one".into(),
        CertificateError::Other(o)
            if matches!(o.0.downcast_ref::<webpki::Error>(), Some(webpki::Error::CaUsedAsEndEntity)) =>
        {
            match ca_file {
            Some(ca) => format!(
                "the server presents a CA certificate as its own, and it is not one of those in ca_file {}; \
                 name that very certificate (the server's self-signed one) as ca_file",
                ca.display()
            ),
                None => {
                    format!("the server presents a CA certificate as its own (a self-signed one?); {set_ca_file}")
                }
            }
        }
        _ => match ca_file {
            Some(_) => "the certificate could not be verified".into(),
            None => format!("the certificate could not be verified; {set_ca_file}"),
        },
    }
}
