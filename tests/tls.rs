//! Issue 7, TLS and files: a private CA through `ca_file`, certificate errors that
//! name the problem, `verify_tls = false` warned about at every start, plain http
//! to a remote host refused before any traffic, config and secret files with a
//! wrong owner or loose mode refused with the fix, and no file half-written by a
//! crash. The real binaries against the emulator's HTTPS listener.

mod common;

use common::*;
use looker_emulator::{Emulator, EmulatorConfig, EmulatorUser, TlsIdentity};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

/// A private certificate authority.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn private_ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca { pem: cert.pem(), issuer: Issuer::new(params, key) }
}

/// A server certificate for `names` signed by `ca`; `expired` dates it in the past.
fn server_identity(ca: &Ca, names: &[&str], expired: bool) -> TlsIdentity {
    let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.use_authority_key_identifier_extension = true;
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    TlsIdentity { cert_chain_pem: cert.pem(), key_pem: key.serialize_pem() }
}

/// An HTTPS emulator on its own runtime, with one credential.
struct TlsLooker {
    emu: Option<Emulator>,
    rt: tokio::runtime::Runtime,
}

impl TlsLooker {
    fn start(identity: &TlsIdentity, id: &str, secret: &str) -> TlsLooker {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let emu = rt.block_on(Emulator::start_tls(EmulatorConfig::default(), identity)).unwrap();
        emu.add_credential(id, secret, EmulatorUser::new("7", "TLS Bot", "tls@example.com"));
        TlsLooker { emu: Some(emu), rt }
    }

    fn emu(&self) -> &Emulator {
        self.emu.as_ref().unwrap()
    }

    fn url(&self) -> String {
        self.emu().base_url()
    }
}

impl Drop for TlsLooker {
    fn drop(&mut self) {
        if let Some(e) = self.emu.take() {
            self.rt.block_on(e.shutdown());
        }
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn write_pem(env: &TestEnv, name: &str, pem: &str) -> PathBuf {
    let p = env.dir.path().join(name);
    std::fs::write(&p, pem).unwrap();
    p
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn is_root() -> bool {
    rustix::process::geteuid().as_raw() == 0
}

#[test]
fn a_private_ca_in_ca_file_works_end_to_end() {
    let ca = private_ca("Corp Root CA");
    let looker =
        TlsLooker::start(&server_identity(&ca, &["127.0.0.1", "localhost"], false), "t-id", "t-secret");
    assert!(looker.url().starts_with("https://127.0.0.1:"));
    let env = TestEnv::new("file");
    let ca_file = write_pem(&env, "corp-ca.pem", &ca.pem);
    env.ctl_ok(
        &["profile", "add", "corp", "--base-url", &looker.url(), "--ca-file", ca_file.to_str().unwrap()],
        None,
    );
    env.ctl_ok(&["credential", "add", "corp", "c", "--client-id", "t-id"], Some("t-secret"));
    let mut agent = env.start_agent(&[]);
    let token = env.ctl_ok(&["token", "corp"], None);
    assert!(looker.emu().is_live(token.trim()), "not a token of the emulator: {token}");
    assert_eq!(looker.emu().counters().logins, 1);
    // Revoked over the same TLS connection settings at shutdown.
    let (st, _) = agent.stop_with(15);
    assert!(st.success());
    assert!(!looker.emu().is_live(token.trim()));
    assert!(!agent.log_text().contains("TLS verification is OFF"));
}

/// `POST /v1/reload` over the agent's socket (what lookerctl's edits send), then the
/// gateway's socket door, `/looker/corp/api/4.0/user`: the status of each.
fn reload_then_call_through_the_gateway(env: &TestEnv) -> (u16, u16) {
    let sock = env.socket.to_str().unwrap();
    let status = |args: &[&str]| {
        let out = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", sock])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).parse::<u16>().unwrap_or(0)
    };
    let reloaded = status(&["-X", "POST", "http://agent/v1/reload"]);
    (reloaded, status(&["http://agent/looker/corp/api/4.0/user"]))
}

#[test]
fn a_fixed_ca_file_takes_effect_at_a_reload() {
    let ca = private_ca("Corp Root CA");
    let other = private_ca("Some Other CA");
    let looker =
        TlsLooker::start(&server_identity(&ca, &["127.0.0.1", "localhost"], false), "t-id", "t-secret");
    let env = TestEnv::new("file");
    // The wrong CA first, as when an admin points ca_file at the wrong bundle.
    let ca_file = write_pem(&env, "corp-ca.pem", &other.pem);
    env.ctl_ok(
        &["profile", "add", "corp", "--base-url", &looker.url(), "--ca-file", ca_file.to_str().unwrap()],
        None,
    );
    env.ctl_ok(&["credential", "add", "corp", "c", "--client-id", "t-id"], Some("t-secret"));
    let mut agent = env.start_agent(&[]);
    let out = env.ctl(&["token", "corp"], None);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("not signed by the CA in ca_file"), "{}", stderr(&out));

    // The file fixed in place (same path: the profile's settings are unchanged) and a
    // reload: the agent's logins and the gateway's calls both use the new contents.
    std::fs::write(&ca_file, &ca.pem).unwrap();
    assert_eq!(reload_then_call_through_the_gateway(&env), (200, 200));
    let token = env.ctl_ok(&["token", "corp"], None);
    assert!(looker.emu().is_live(token.trim()), "not a token of the emulator: {token}");

    // Broken later (unreadable): a reload keeps the CAs read before, so the live token is
    // still served and still revoked at shutdown; the log says what to fix.
    std::fs::write(&ca_file, "not a certificate").unwrap();
    assert_eq!(reload_then_call_through_the_gateway(&env), (200, 200));
    let shown = env.ctl_ok(&["profile", "show", "corp"], None);
    assert!(shown.contains("unusable: ca_file") && shown.contains("holds no PEM certificate"), "{shown}");
    assert_eq!(env.ctl_ok(&["token", "corp"], None), token);
    let (st, _) = agent.stop_with(15);
    assert!(st.success());
    assert!(!looker.emu().is_live(token.trim()), "the token outlived the agent");
    assert!(
        agent.log_text().contains("keeping the certificate authorities read before"),
        "{}",
        agent.log_text()
    );
}

#[test]
fn a_ca_file_that_cannot_be_used_is_refused_by_profile_add() {
    let env = TestEnv::new("file");
    let bad = write_pem(&env, "bad.pem", "not a certificate");
    let missing = env.dir.path().join("missing.pem");
    for (path, why) in [(&bad, "holds no PEM certificate"), (&missing, "cannot read ca_file")] {
        let out = env.ctl(
            &[
                "profile",
                "add",
                "corp",
                "--base-url",
                "https://looker.corp.example",
                "--ca-file",
                path.to_str().unwrap(),
            ],
            None,
        );
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(why), "{}", stderr(&out));
    }
    let out = env.ctl(&["profile", "show", "corp"], None);
    assert!(!out.status.success(), "the profile was added anyway");
}

#[test]
fn certificate_errors_name_the_problem() {
    let ca = private_ca("Corp Root CA");
    let good = TlsLooker::start(&server_identity(&ca, &["127.0.0.1"], false), "t-id", "t-secret");
    let wrong_name =
        TlsLooker::start(&server_identity(&ca, &["looker.other.example"], false), "t-id", "t-secret");
    let expired = TlsLooker::start(&server_identity(&ca, &["127.0.0.1"], true), "t-id", "t-secret");
    let env = TestEnv::new("file");
    let ca_file = write_pem(&env, "corp-ca.pem", &ca.pem);
    let ca_arg = ca_file.to_str().unwrap();
    env.ctl_ok(&["profile", "add", "noca", "--base-url", &good.url()], None);
    env.ctl_ok(&["profile", "add", "wrongname", "--base-url", &wrong_name.url(), "--ca-file", ca_arg], None);
    env.ctl_ok(&["profile", "add", "expired", "--base-url", &expired.url(), "--ca-file", ca_arg], None);
    for p in ["noca", "wrongname", "expired"] {
        env.ctl_ok(&["credential", "add", p, "c", "--client-id", "t-id"], Some("t-secret"));
    }
    let agent = env.start_agent(&[]);

    // Without the CA: exit 6, the certificate problem named, and what to do about it.
    let out = env.ctl(&["token", "noca"], None);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(err.contains("certificate") && err.contains("UnknownIssuer"), "{err}");
    assert!(err.contains("a CA this machine does not trust") && err.contains("ca_file"), "{err}");

    let out = env.ctl(&["token", "wrongname"], None);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(err.contains("certificate not valid for name") && err.contains("looker.other.example"), "{err}");
    assert!(err.contains("not for the host in base_url"), "{err}");

    let out = env.ctl(&["token", "expired"], None);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(err.contains("certificate expired"), "{err}");
    assert!(err.contains("validity period"), "{err}");

    // Nothing reached Looker's login: the handshake failed first.
    for l in [&good, &wrong_name, &expired] {
        assert_eq!(l.emu().counters().logins + l.emu().counters().failed_logins, 0);
    }
    assert!(!agent.log_text().contains("t-secret"));
}

/// `http://` in base_url for a port that serves HTTPS (an easy slip, e.g. with an
/// instance tunnelled to localhost): the agent's logins and the gateway both say that
/// the answer is not HTTP and that such a port needs https://; and `https://` for a
/// plain port says to check the scheme and port.
#[test]
fn plain_http_to_an_https_port_says_to_use_https() {
    let ca = private_ca("Corp Root CA");
    let looker = TlsLooker::start(&server_identity(&ca, &["127.0.0.1"], false), "t-id", "t-secret");
    let url = looker.url().replace("https://", "http://");
    let env = TestEnv::new("file");
    env.ctl_ok(&["profile", "add", "slip", "--base-url", &url], None);
    env.ctl_ok(&["credential", "add", "slip", "c", "--client-id", "t-id"], Some("t-secret"));
    let agent = env.start_agent(&[]);
    let out = env.ctl(&["token", "slip"], None);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(err.contains("cannot be read as HTTP") && err.contains("https://"), "{err}");
    let out = std::process::Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "--unix-socket", env.socket.to_str().unwrap()])
        .arg("http://agent/looker/slip/alive")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with("\n502"), "{text}");
    assert!(text.contains("cannot be read as HTTP") && text.contains("https://"), "{text}");
    assert!(!agent.log_text().contains("t-secret"));

    // The other way round, https:// for a plain-HTTP port: the handshake fails, with
    // the same advice in its words.
    let plain = BgEmulator::start(Duration::from_secs(3600), &[("t-id", "t-secret")]);
    let url = plain.url().replace("http://", "https://");
    env.ctl_ok(&["profile", "add", "slip2", "--base-url", &url], None);
    env.ctl_ok(&["credential", "add", "slip2", "c", "--client-id", "t-id"], Some("t-secret"));
    let out = env.ctl(&["token", "slip2"], None);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(err.contains("TLS") && err.contains("scheme and port"), "{err}");
}

/// A self-signed server certificate made the way admins make one: `openssl req -x509`,
/// which marks it CA:TRUE (OpenSSL's default `v3_ca` extensions).
fn openssl_self_signed(env: &TestEnv, name: &str, san: &str) -> (TlsIdentity, PathBuf) {
    let dir = env.dir.path();
    let (cert, key) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
        ])
        .args(["-subj", "/CN=Looker self-signed", "-addext", &format!("subjectAltName={san}")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (Debian package openssl) is needed for this test");
    assert!(out.status.success(), "openssl req -x509: {}", stderr(&out));
    let text = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("CA:TRUE"),
        "the point of the test: a CA:TRUE cert"
    );
    let identity = TlsIdentity {
        cert_chain_pem: std::fs::read_to_string(&cert).unwrap(),
        key_pem: std::fs::read_to_string(&key).unwrap(),
    };
    (identity, cert)
}

#[test]
fn a_self_signed_server_certificate_named_as_ca_file_is_accepted_like_curl_does() {
    let env = TestEnv::new("file");
    let (identity, cert) = openssl_self_signed(&env, "server", "IP:127.0.0.1,DNS:localhost");
    let looker = TlsLooker::start(&identity, "t-id", "t-secret");
    let cert_arg = cert.to_str().unwrap();
    // curl accepts it (the behaviour to match), when curl is there to ask.
    if let Ok(out) = std::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", cert_arg])
        .arg(format!("{}/alive", looker.url()))
        .output()
    {
        assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "curl --cacert: {}", stderr(&out));
    }
    env.ctl_ok(&["profile", "add", "selfsigned", "--base-url", &looker.url(), "--ca-file", cert_arg], None);
    env.ctl_ok(&["credential", "add", "selfsigned", "c", "--client-id", "t-id"], Some("t-secret"));

    // The very certificate, but for another name; and another self-signed certificate
    // than the one the server presents: still refused, each for its real cause.
    let (other_name, other_name_cert) = openssl_self_signed(&env, "other-name", "DNS:looker.other.example");
    let wrong_name = TlsLooker::start(&other_name, "t-id", "t-secret");
    let (_, unrelated_cert) = openssl_self_signed(&env, "unrelated", "IP:127.0.0.1");
    let other_arg = other_name_cert.to_str().unwrap();
    env.ctl_ok(
        &["profile", "add", "wrongname", "--base-url", &wrong_name.url(), "--ca-file", other_arg],
        None,
    );
    let unrelated_arg = unrelated_cert.to_str().unwrap();
    env.ctl_ok(
        &["profile", "add", "unrelated", "--base-url", &looker.url(), "--ca-file", unrelated_arg],
        None,
    );
    for p in ["wrongname", "unrelated"] {
        env.ctl_ok(&["credential", "add", p, "c", "--client-id", "t-id"], Some("t-secret"));
    }

    let mut agent = env.start_agent(&[]);
    let token = env.ctl_ok(&["token", "selfsigned"], None);
    assert!(looker.emu().is_live(token.trim()), "not a token of the emulator: {token}");

    let out = env.ctl(&["token", "wrongname"], None);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(
        err.contains("certificate not valid for name") && err.contains("not for the host in base_url"),
        "{err}"
    );

    // ca_file is set: the message names it, and does not tell the user to set it.
    let out = env.ctl(&["token", "unrelated"], None);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(err.contains(unrelated_arg), "names the ca_file it checked: {err}");
    assert!(!err.contains("--ca-file PATH"), "says to set ca_file, which the user did: {err}");
    assert_eq!(wrong_name.emu().counters().logins, 0);

    let (st, _) = agent.stop_with(15);
    assert!(st.success());
    assert!(!looker.emu().is_live(token.trim()), "revoked over the same TLS settings at shutdown");
}

#[test]
fn an_expired_self_signed_certificate_named_as_ca_file_is_refused_as_expired() {
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, "old self-signed");
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let identity = TlsIdentity { cert_chain_pem: cert.pem(), key_pem: key.serialize_pem() };
    let looker = TlsLooker::start(&identity, "t-id", "t-secret");
    let env = TestEnv::new("file");
    let ca_file = write_pem(&env, "old.pem", &cert.pem());
    env.ctl_ok(
        &["profile", "add", "old", "--base-url", &looker.url(), "--ca-file", ca_file.to_str().unwrap()],
        None,
    );
    env.ctl_ok(&["credential", "add", "old", "c", "--client-id", "t-id"], Some("t-secret"));
    let _agent = env.start_agent(&[]);
    let out = env.ctl(&["token", "old"], None);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(err.contains("certificate expired") && err.contains("validity period"), "{err}");
    assert_eq!(looker.emu().counters().logins, 0);
}

#[test]
fn verify_tls_false_works_and_is_warned_about_at_every_start() {
    let ca = private_ca("Unknown CA");
    let looker = TlsLooker::start(&server_identity(&ca, &["127.0.0.1"], false), "t-id", "t-secret");
    let env = TestEnv::new("file");
    env.ctl_ok(&["profile", "add", "lax", "--base-url", &looker.url(), "--no-verify-tls"], None);
    env.ctl_ok(&["credential", "add", "lax", "c", "--client-id", "t-id"], Some("t-secret"));
    for _ in 0..2 {
        let mut agent = env.start_agent(&[]);
        let token = env.ctl_ok(&["token", "lax"], None);
        assert!(looker.emu().is_live(token.trim()));
        let (st, _) = agent.stop_with(15);
        assert!(st.success());
        let log = agent.log_text();
        assert!(log.contains("WARN") && log.contains("TLS verification is OFF"), "log:\n{log}");
        assert!(log.contains(&looker.url()), "the warning names the instance:\n{log}");
    }
}

/// A non-loopback address of this machine, to run a plain-http emulator on.
fn non_loopback_ipv4() -> Option<std::net::Ipv4Addr> {
    // The kernel picks the source address for a route; nothing is sent by connect() on UDP.
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    match s.local_addr().ok()?.ip() {
        std::net::IpAddr::V4(a) if !a.is_loopback() && !a.is_unspecified() => Some(a),
        _ => None,
    }
}

#[test]
fn plain_http_to_a_remote_host_is_refused_before_any_traffic() {
    let env = TestEnv::new("file");
    // lookerctl refuses to write it, saying why.
    let out = env.ctl(&["profile", "add", "remote", "--base-url", "http://example.invalid"], None);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("plain http") && err.contains("unencrypted") && err.contains("https"), "{err}");

    // A config written by hand: the agent refuses to send anything there. With an
    // emulator on a non-loopback address of this machine, that is checked on the
    // wire too (no login arrives); else the name does not even resolve.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let emu = non_loopback_ipv4().and_then(|ip| {
        rt.block_on(Emulator::start_on(std::net::SocketAddr::from((ip, 0)), EmulatorConfig::default())).ok()
    });
    let base_url = emu.as_ref().map(|e| e.base_url()).unwrap_or_else(|| "http://example.invalid".into());
    if let Some(e) = &emu {
        e.add_credential("r-id", "r-secret", EmulatorUser::new("1", "R", "r@example.com"));
    }
    std::fs::create_dir_all(env.config.parent().unwrap()).unwrap();
    std::fs::write(
        &env.config,
        format!("[profiles.remote]\nbase_url = \"{base_url}\"\n[[profiles.remote.credentials]]\nname = \"c\"\nclient_id = \"r-id\"\n"),
    )
    .unwrap();
    env.ctl_ok(&["credential", "add", "remote", "c", "--client-id", "r-id"], Some("r-secret"));
    let agent = env.start_agent(&[]);
    let out = env.ctl(&["token", "remote"], None);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(err.contains("refusing plain http") && err.contains("allow_insecure_http"), "{err}");
    assert!(err.contains("unencrypted"), "{err}");
    if let Some(e) = &emu {
        let c = e.counters();
        assert_eq!((c.logins, c.failed_logins, e.api_calls()), (0, 0, 0), "traffic reached {base_url}");
    }
    let log = agent.log_text();
    assert!(log.contains("refusing plain http"), "the agent says so at start:\n{log}");
    drop(agent);
    if let Some(e) = emu {
        rt.block_on(e.shutdown());
    }
}

#[test]
fn a_config_file_others_could_change_is_refused_with_the_fix() {
    let env = TestEnv::new("file");
    env.ctl_ok(&["profile", "add", "p", "--base-url", "https://looker.example.com"], None);
    chmod(&env.config, 0o666);
    let expect_fix = |out: &Output| {
        let err = stderr(out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("writable by group and others")
                && err.contains(&format!("chmod go-w {}", env.config.display())),
            "{err}"
        );
    };
    // The daemon does not start, lookerctl does not use it either.
    let mut cmd = std::process::Command::new(agent_bin());
    cmd.envs(&env.vars).env_remove("LOOKER_AGENT_CONFIG").env_remove("LOOKER_AGENT_SOCKET");
    let out = cmd.output().unwrap();
    expect_fix(&out);
    assert!(!env.socket.exists());
    expect_fix(&env.ctl(&["profile", "list"], None));
    chmod(&env.config, 0o644);
    env.ctl_ok(&["profile", "list"], None);

    if !is_root() {
        eprintln!("skipped the owner half: needs root to give a file away (CI runs as root)");
        return;
    }
    std::os::unix::fs::chown(&env.config, Some(65534), None).unwrap();
    let out = cmd.output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("owned by uid 65534") && err.contains(&format!("chown 0 {}", env.config.display())),
        "{err}"
    );
    let out = env.ctl(&["profile", "list"], None);
    assert!(stderr(&out).contains("owned by uid 65534"), "{}", stderr(&out));
}

#[test]
fn a_secret_file_with_a_loose_mode_or_another_owner_is_refused_with_the_fix() {
    let emu = BgEmulator::start(Duration::from_secs(3600), &[("f-id", "f-secret")]);
    let env = TestEnv::new("file");
    env.add_profile("p", &emu.url(), &[("c", "f-id", "f-secret")]);
    let secret_file = env.dir.path().join("data/looker-agent/secrets/p/c.d/f-id.json");
    assert_eq!(std::fs::metadata(&secret_file).unwrap().permissions().mode() & 0o777, 0o600);
    let _agent = env.start_agent(&[]);

    chmod(&secret_file, 0o644);
    let out = env.ctl(&["token", "p"], None);
    let err = stderr(&out);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("mode 0644") && err.contains(&format!("chmod 600 {}", secret_file.display())),
        "{err}"
    );
    assert!(!err.contains("f-secret"));
    assert_eq!(emu.emu().counters().logins, 0, "a loose secret was used");

    chmod(&secret_file, 0o600);
    if is_root() {
        std::os::unix::fs::chown(&secret_file, Some(65534), None).unwrap();
        let out = env.ctl(&["token", "p"], None);
        let err = stderr(&out);
        assert!(err.contains("owned by uid 65534") && err.contains("chown"), "{err}");
        assert_eq!(emu.emu().counters().logins, 0);
        std::os::unix::fs::chown(&secret_file, Some(0), None).unwrap();
    } else {
        eprintln!("skipped the owner half: needs root to give a file away (CI runs as root)");
    }
    // Fixed as told: served.
    env.ctl_ok(&["token", "p"], None);
}

#[test]
fn a_leftover_temporary_file_is_ignored_and_the_real_files_are_intact() {
    let emu = BgEmulator::start(Duration::from_secs(3600), &[("l-id", "l-secret")]);
    let env = TestEnv::new("file");
    env.add_profile("p", &emu.url(), &[("c", "l-id", "l-secret")]);
    let config_dir = env.config.parent().unwrap().to_path_buf();
    let secrets_dir = env.dir.path().join("data/looker-agent/secrets/p");
    // What a crash between "write the temporary file" and "rename it" leaves behind.
    std::fs::write(config_dir.join(".config.toml.Xy12ab.tmp"), "[profiles.half\nbase_url = \"ht").unwrap();
    std::fs::write(secrets_dir.join(".c.json.Xy12ab.tmp"), "{\"client_id\":\"l-id\",\"client_se").unwrap();
    let _agent = env.start_agent(&[]);
    let token = env.ctl_ok(&["token", "p"], None);
    assert!(emu.emu().is_live(token.trim()));
    let list = env.ctl_ok(&["profile", "list"], None);
    assert!(list.contains('p') && !list.contains("half"), "{list}");
    // Later writes work around them.
    env.ctl_ok(&["credential", "add", "p", "d", "--client-id", "l-id"], Some("l-secret"));
    env.ctl_ok(&["token", "p", "--credential", "d"], None);
}

/// lookerctl killed at random moments while it rewrites the config and a secret:
/// every file is always the old or the new version, never a torn one.
#[test]
fn a_crash_mid_write_never_leaves_a_torn_file() {
    use looker_agent::config::Config;
    use looker_agent::store::{file::FileStore, SecretKey, SecretStore};
    let env = TestEnv::new("file");
    env.ctl_ok(&["profile", "add", "p", "--base-url", "https://looker.example.com"], None);
    env.ctl_ok(&["credential", "add", "p", "c", "--client-id", "id-0"], Some("secret-0"));
    let store = FileStore::new(env.dir.path().join("data/looker-agent"));
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let key = SecretKey::new("p", "c");
    let mut killed = 0;
    for i in 1..=40u64 {
        let mut cmd =
            env.ctl_command(&["credential", "add", "p", "c", "--client-id", &format!("id-{i}")], &[], None);
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut child = cmd.spawn().unwrap();
        {
            use std::io::Write;
            let mut sin = child.stdin.take().unwrap();
            let _ = sin.write_all(format!("secret-{i}").as_bytes());
        }
        // Somewhere between start and done (lookerctl takes a few milliseconds).
        std::thread::sleep(Duration::from_micros((i * 397) % 6000));
        if child.try_wait().unwrap().is_none() {
            let _ = child.kill();
            killed += 1;
        }
        let _ = child.wait();
        let cfg = Config::load(&env.config).unwrap_or_else(|e| panic!("config torn after kill {i}: {e}"));
        let ids: Vec<&str> = cfg.profiles["p"].credentials.iter().map(|c| c.client_id.as_str()).collect();
        assert_eq!(ids.len(), 1, "{ids:?}");
        let secret = rt
            .block_on(store.get(&key, ids[0]))
            .unwrap_or_else(|e| panic!("secret torn after kill {i}: {e}"));
        assert!(secret.expose().starts_with("secret-"), "secret after kill {i}");
    }
    assert!(killed > 0, "no lookerctl was killed mid-way; the test proves nothing");
}
