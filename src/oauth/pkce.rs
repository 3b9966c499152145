//! PKCE (RFC 7636) S256 and the `state` value of one sign-in.

use crate::secret::Secret;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore as _;

/// One sign-in's secrets: the verifier stays in this process; the challenge and
/// the state travel through the browser.
pub struct Pkce {
    /// The code verifier (43 characters of base64url), sent only with the code.
    pub verifier: Secret,
    /// `BASE64URL(SHA256(verifier))`.
    pub challenge: String,
    /// A random value the redirect must bring back (it ties the answer to this sign-in).
    pub state: String,
}

impl Pkce {
    /// Fresh random values (32 bytes of the OS's randomness each).
    pub fn new() -> Pkce {
        let verifier = random_b64();
        let challenge = challenge_of(&verifier);
        Pkce { verifier: Secret::new(verifier), challenge, state: random_b64() }
    }
}

impl Default for Pkce {
    fn default() -> Self {
        Pkce::new()
    }
}

/// The S256 challenge of a verifier.
pub fn challenge_of(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()))
}

fn random_b64() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_matches_pythons_hashlib() {
        assert_eq!(
            challenge_of("dBjftJeZ4CVP-mB92K9uhvzPU8Sc7wHb6nm5h5QYmvw"),
            // python3: base64.urlsafe_b64encode(hashlib.sha256(v).digest()).rstrip(b"=")
            "p1-q4t94ovRDXgNceEMkJYC3VS0HCafIe1vK1QXUtnY"
        );
    }

    #[test]
    fn values_are_fresh_and_well_formed() {
        let (a, b) = (Pkce::new(), Pkce::new());
        assert_ne!(a.verifier.expose(), b.verifier.expose());
        assert_ne!(a.state, b.state);
        assert_eq!(a.verifier.expose().len(), 43);
        assert_eq!(a.challenge, challenge_of(a.verifier.expose()));
    }
}
