//! TLS for the `tcp_tls` and `websocket_tls` listeners: rustls with the
//! *ring* provider, TLS 1.2 and 1.3, PEM files, optional client
//! certificates whose name becomes the connection's TLS identity.

use super::{OutBuf, Transport};
use crate::config::TlsConfig;
use bytes::BytesMut;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::io;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;

/// Builds a server configuration from the PEM files `tls` names. Errors are
/// readable sentences naming the file at fault.
pub(crate) fn server_config(tls: &TlsConfig) -> Result<Arc<ServerConfig>, String> {
    if !tls.is_configured() {
        return Err("[tls] needs both cert and key (PEM files)".to_owned());
    }
    let certs = read_certs(&tls.cert, "tls.cert")?;
    let key = PrivateKeyDer::from_pem_file(&tls.key)
        .map_err(|e| format!("cannot read a private key from tls.key {}: {e}", tls.key))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS setup failed: {e}"))?;
    let builder = if tls.client_ca.is_empty() {
        if tls.require_client_cert {
            return Err("tls.require_client_cert needs tls.client_ca".to_owned());
        }
        builder.with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        for ca in read_certs(&tls.client_ca, "tls.client_ca")? {
            roots.add(ca).map_err(|e| {
                format!(
                    "tls.client_ca {} holds an unusable certificate: {e}",
                    tls.client_ca
                )
            })?;
        }
        let mut verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider));
        if !tls.require_client_cert {
            verifier = verifier.allow_unauthenticated();
        }
        let verifier = verifier
            .build()
            .map_err(|e| format!("tls.client_ca {}: {e}", tls.client_ca))?;
        builder.with_client_cert_verifier(verifier)
    };
    let config = builder.with_single_cert(certs, key).map_err(|e| {
        format!(
            "tls.cert {} and tls.key {} cannot be used together: {e}",
            tls.cert, tls.key
        )
    })?;
    Ok(Arc::new(config))
}

/// Every certificate in a PEM file; at least one.
fn read_certs(path: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read certificates from {what} {path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{what} {path} holds no PEM certificate"));
    }
    Ok(certs)
}

/// Runs the server side of the TLS handshake with `config` (the caller
/// bounds it in time).
pub(crate) async fn handshake<S>(config: Arc<ServerConfig>, stream: S) -> io::Result<TlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    tokio_rustls::TlsAcceptor::from(config).accept(stream).await
}

/// The user name the client's verified certificate carries, if it sent
/// one (rustls only keeps certificates that the client CA verified).
pub(crate) fn peer_identity<S>(stream: &TlsStream<S>) -> Option<Box<str>> {
    let leaf = stream.get_ref().1.peer_certificates()?.first()?;
    identity_from_der(leaf.as_ref())
}

/// The OID of an X.520 common name.
const COMMON_NAME: x509_cert::spki::ObjectIdentifier =
    x509_cert::spki::ObjectIdentifier::new_unwrap("2.5.4.3");

/// A certificate's user name: its subject's common name, else its first
/// DNS or email subject alternative name. `None` if it has none of them or
/// cannot be parsed.
pub(crate) fn identity_from_der(der: &[u8]) -> Option<Box<str>> {
    use x509_cert::der::{Decode, Tag, Tagged};
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::ext::pkix::SubjectAltName;

    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let tbs = &cert.tbs_certificate;
    let common_name = tbs
        .subject
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .filter(|attr| attr.oid == COMMON_NAME)
        .find_map(|attr| match attr.value.tag() {
            // The string types names use in practice; all are UTF-8 text
            // (Teletex holding ASCII, as certificates do).
            Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::TeletexString => {
                std::str::from_utf8(attr.value.value())
                    .ok()
                    .map(str::to_owned)
            }
            _ => None,
        });
    let name = common_name.or_else(|| {
        let (_, san) = tbs.get::<SubjectAltName>().ok()??;
        san.0.into_iter().find_map(|name| match name {
            GeneralName::DnsName(s) | GeneralName::Rfc822Name(s) => Some(s.to_string()),
            _ => None,
        })
    })?;
    let name = name.trim();
    // A user name is printable text; anything else is not a name.
    if name.is_empty() || name.chars().any(char::is_control) {
        return None;
    }
    Some(name.into())
}

/// A transport reached through TLS: the same framing as `inner`, plus the
/// client certificate's identity.
pub(crate) struct Secured<T> {
    inner: T,
    identity: Option<Box<str>>,
    kind: &'static str,
}

impl<T> Secured<T> {
    /// Wraps `inner`; `kind` names it in logs (`tls`, `wss`).
    pub(crate) fn new(inner: T, identity: Option<Box<str>>, kind: &'static str) -> Self {
        Secured {
            inner,
            identity,
            kind,
        }
    }
}

impl<T: Transport> Transport for Secured<T> {
    async fn read(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        self.inner.read(buf).await
    }

    async fn write(&mut self, out: &mut OutBuf) -> io::Result<()> {
        self.inner.write(out).await
    }

    async fn close(&mut self) {
        self.inner.close().await
    }

    fn kind(&self) -> &'static str {
        self.kind
    }

    fn tls_identity(&self) -> Option<&str> {
        self.identity.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::identity_from_der;
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};

    fn cert(common_name: Option<&str>, sans: Vec<SanType>) -> Vec<u8> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Example");
        if let Some(cn) = common_name {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        params.subject_alt_names = sans;
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn the_common_name_is_the_identity() {
        let der = cert(
            Some("alice"),
            vec![SanType::DnsName("alice.example.com".try_into().unwrap())],
        );
        assert_eq!(identity_from_der(&der).as_deref(), Some("alice"));
    }

    #[test]
    fn without_a_common_name_the_first_dns_or_email_name_is() {
        let der = cert(
            None,
            vec![
                SanType::IpAddress("10.0.0.1".parse().unwrap()),
                SanType::DnsName("svc.example.com".try_into().unwrap()),
                SanType::Rfc822Name("bob@example.com".try_into().unwrap()),
            ],
        );
        assert_eq!(identity_from_der(&der).as_deref(), Some("svc.example.com"));
        let der = cert(
            None,
            vec![SanType::Rfc822Name("bob@example.com".try_into().unwrap())],
        );
        assert_eq!(identity_from_der(&der).as_deref(), Some("bob@example.com"));
    }

    #[test]
    fn no_name_or_no_certificate_is_no_identity() {
        assert_eq!(identity_from_der(&cert(None, Vec::new())), None);
        assert_eq!(identity_from_der(&cert(Some("  "), Vec::new())), None);
        assert_eq!(identity_from_der(b"not a certificate"), None);
    }

    #[test]
    fn bad_files_give_readable_errors() {
        let config = crate::config::TlsConfig {
            cert: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
            ..Default::default()
        };
        let e = super::server_config(&config).unwrap_err();
        assert!(e.contains("tls.cert /nonexistent/cert.pem"), "{e}");
    }
}
