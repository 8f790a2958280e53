//! The schema registry client over HTTPS with a private CA, basic and bearer authentication,
//! against a small TLS server standing in for the registry. No broker needed; `openssl` (the
//! command) makes the certificates.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use aura::codec::Codec;
use aura::security::{RegistryAccess, RegistryAuth, Secret};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_native_tls::native_tls;

const PASSWORD: &str = "registry-pw-4b1d";
const TOKEN: &str = "registry-token-9e2c";

/// A CA and a server certificate for 127.0.0.1, made with the openssl command.
fn certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(dir.join("ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-days",
        "1",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-extfile",
        "ext",
        "-out",
        "server.pem",
    ]);
    run(&[
        "pkcs8",
        "-topk8",
        "-nocrypt",
        "-in",
        "server.key",
        "-out",
        "server.pk8",
    ]);
}

/// Serves HTTPS on a free port: 200 with a schema id when the Authorization header is one of
/// `accepted`, else 401. Records every Authorization header it saw.
async fn registry(dir: &Path, accepted: Vec<String>) -> (String, Arc<Mutex<Vec<String>>>) {
    let cert = std::fs::read(dir.join("server.pem")).unwrap();
    let key = std::fs::read(dir.join("server.pk8")).unwrap();
    let identity = native_tls::Identity::from_pkcs8(&cert, &key).unwrap();
    let acceptor =
        tokio_native_tls::TlsAcceptor::from(native_tls::TlsAcceptor::new(identity).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, accepted, log) = (acceptor.clone(), accepted.clone(), log.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 64 * 1024];
                let mut len = 0;
                // Read the head and the (small) JSON body.
                loop {
                    let n = tls.read(&mut buf[len..]).await.unwrap_or(0);
                    len += n;
                    let text = String::from_utf8_lossy(&buf[..len]);
                    let complete = text.split_once("\r\n\r\n").is_some_and(|(head, body)| {
                        let length = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length: ")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        body.len() >= length
                    });
                    if n == 0 || complete {
                        break;
                    }
                }
                let text = String::from_utf8_lossy(&buf[..len]).into_owned();
                let auth = text.lines().find_map(|l| {
                    let (name, value) = l.split_once(": ")?;
                    name.eq_ignore_ascii_case("authorization")
                        .then(|| value.to_owned())
                });
                log.lock().unwrap().push(auth.clone().unwrap_or_default());
                let (status, body) = if auth.is_some_and(|a| accepted.contains(&a)) {
                    ("200 OK", r#"{"id":42}"#)
                } else {
                    (
                        "401 Unauthorized",
                        r#"{"error_code":40101,"message":"Unauthorized"}"#,
                    )
                };
                let response = format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (url, seen)
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        openssl::base64::encode_block(format!("{user}:{password}").as_bytes())
    )
}

fn refused(result: Result<Codec, aura::codec::CodecError>) -> aura::codec::CodecError {
    match result {
        Ok(_) => panic!("the registry was expected to refuse"),
        Err(e) => e,
    }
}

const WRITES: &[(&str, &str)] = &[("t", "aura.v1.AgentResult")];

#[tokio::test]
async fn basic_auth_over_https_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let (url, seen) = registry(dir.path(), vec![basic("aura", PASSWORD)]).await;
    let access = RegistryAccess {
        url: url.clone(),
        ca_location: Some(dir.path().join("ca.pem")),
        auth: RegistryAuth::Basic {
            username: "aura".into(),
            password: Secret::new(PASSWORD),
        },
    };
    let codec = Codec::with_registry_access(&access, WRITES).await.unwrap();
    assert_eq!(
        codec.schema_id::<aura::model::AgentResult>("t").unwrap(),
        42
    );
    assert_eq!(seen.lock().unwrap()[0], basic("aura", PASSWORD));

    // Without the private CA the server is not trusted.
    let untrusted = RegistryAccess {
        ca_location: None,
        ..access.clone()
    };
    let err = refused(Codec::with_registry_access(&untrusted, WRITES).await).to_string();
    assert!(err.contains(&url), "{err}");

    // A wrong password: refused, and neither password appears in the error.
    let wrong = RegistryAccess {
        auth: RegistryAuth::Basic {
            username: "aura".into(),
            password: Secret::new("not-the-pw-77"),
        },
        ..access
    };
    let err = refused(Codec::with_registry_access(&wrong, WRITES).await);
    let text = format!("{err} {err:?}");
    assert!(text.contains("401"), "{text}");
    assert!(
        !text.contains("not-the-pw-77") && !text.contains(PASSWORD),
        "{text}"
    );
    assert!(
        !text.contains(&basic("aura", "not-the-pw-77")[6..]),
        "{text}"
    );
}

#[tokio::test]
async fn bearer_auth_over_https() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let (url, seen) = registry(dir.path(), vec![format!("Bearer {TOKEN}")]).await;
    let access = RegistryAccess {
        url,
        ca_location: Some(dir.path().join("ca.pem")),
        auth: RegistryAuth::Bearer(Secret::new(TOKEN)),
    };
    Codec::with_registry_access(&access, WRITES).await.unwrap();
    assert_eq!(seen.lock().unwrap()[0], format!("Bearer {TOKEN}"));
    let wrong = RegistryAccess {
        auth: RegistryAuth::Bearer(Secret::new("stolen-token-1")),
        ..access
    };
    let err = refused(Codec::with_registry_access(&wrong, WRITES).await);
    let text = format!("{err} {err:?}");
    assert!(
        !text.contains("stolen-token-1") && !text.contains(TOKEN),
        "{text}"
    );
}
