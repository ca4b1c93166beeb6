//! `rediss://` (feature `redis-tls`): the crypto provider, and the
//! certificates given to the builder, checked when the tier is built.

use std::sync::Arc;

use redis::{Client, ConnectionAddr};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use super::redact;
use crate::Error;

fn tls_err(message: String) -> Error {
    Error::backend("redis", message)
}

/// The connections' rustls config uses the process-wide provider: install
/// `ring` unless the application installed one (rustls code that asks for
/// the default in a build with a second provider compiled in would
/// otherwise panic).
fn install_provider() {
    if CryptoProvider::get_default().is_none() {
        // Another thread may win the race: either way one is installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_err(format!("{what} is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(tls_err(format!(
            "{what} holds no certificate: expected PEM text with a \
             `-----BEGIN CERTIFICATE-----` block"
        )));
    }
    Ok(certs)
}

/// The client for `url`, and the TLS configuration of its connections,
/// blocking and async (`None` for a plain URL); every certificate and key
/// is checked here, so a bad one fails `build` rather than every
/// connection.
pub(super) fn configure(
    client: Client,
    url: &str,
    root_cert: Option<Vec<u8>>,
    client_cert: Option<(Vec<u8>, Vec<u8>)>,
) -> Result<(Client, Option<Arc<ClientConfig>>), Error> {
    let info = client.get_connection_info();
    let insecure = match info.addr() {
        ConnectionAddr::TcpTls { insecure, .. } => *insecure,
        _ if root_cert.is_none() && client_cert.is_none() => return Ok((client, None)),
        _ => {
            return Err(tls_err(format!(
                "TLS certificates were given for `{}`, which is not a TLS URL: write \
                 rediss://host:port/db",
                redact(url)
            )))
        }
    };
    if insecure {
        return Err(tls_err(format!(
            "`{}` asks to skip certificate verification (#insecure), which cachefn does \
             not do: trust the server's CA with RedisBuilder::tls_root_cert",
            redact(url)
        )));
    }
    install_provider();

    let provider = CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let mut roots = RootCertStore::empty();
    if let Some(pem) = &root_cert {
        for cert in certificates(pem, "the TLS root certificate (tls_root_cert)")? {
            roots.add(cert).map_err(|e| {
                tls_err(format!(
                    "the TLS root certificate (tls_root_cert) is not a usable CA certificate: {e}"
                ))
            })?;
        }
    } else {
        // The system's roots (the OS store, or SSL_CERT_FILE / SSL_CERT_DIR);
        // an unreadable one is skipped, and a server no root signed fails
        // its connections with a hint.
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    }
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(format!("no TLS protocol version available: {e}")))?
        .with_root_certificates(roots);
    let config = if let Some((cert_pem, key_pem)) = &client_cert {
        let chain = certificates(cert_pem, "the TLS client certificate (tls_client_cert)")?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
            tls_err(format!(
                "the TLS client key (tls_client_cert) holds no usable private key ({e}): \
                 expected PEM with a PKCS#8, PKCS#1 or SEC1 key"
            ))
        })?;
        config.with_client_auth_cert(chain, key).map_err(|e| {
            tls_err(format!(
                "the TLS client certificate and key (tls_client_cert) are not usable: {e}"
            ))
        })?
    } else {
        config.with_no_client_auth()
    };
    Ok((client, Some(Arc::new(config))))
}
