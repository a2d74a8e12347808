//! TLS to PostgreSQL with libpq's `sslmode` meanings, which the driver only partly knows
//! (it parses `disable`, `prefer` and `require`, and no root certificate file):
//!
//! | `sslmode` | encrypted | certificate checked |
//! |---|---|---|
//! | absent, `disable` | no | — |
//! | `prefer` | if the server offers it | no (chain only when `sslrootcert` is set) |
//! | `require` | yes | no (chain only when `sslrootcert` is set) |
//! | `verify-ca` | yes | chain to `sslrootcert` (or the system's roots) |
//! | `verify-full` | yes | chain and host name |
//!
//! `sslrootcert` is a PEM file of one or more certificate authorities, or `system` for the
//! host's store. Without `sslmode` the connection is plain, as before TLS existed here: managed
//! databases that need TLS are given `sslmode=require` or `verify-full` in `storage.url`.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::{StoreError, StoreResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// What `storage.url` asks of TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tls {
    pub mode: Mode,
    /// `sslrootcert`: a PEM file, `system`, or none.
    pub root: Option<String>,
}

impl Default for Tls {
    fn default() -> Self {
        Tls {
            mode: Mode::Disable,
            root: None,
        }
    }
}

fn bad(message: String) -> StoreError {
    StoreError::Unsupported(message)
}

impl Tls {
    /// Takes one query parameter the driver would not understand; `false` leaves it to the driver.
    pub(crate) fn take(&mut self, key: &str, value: &str) -> StoreResult<bool> {
        match key {
            "sslmode" => {
                self.mode = match value {
                    "disable" => Mode::Disable,
                    "prefer" => Mode::Prefer,
                    "require" => Mode::Require,
                    "verify-ca" => Mode::VerifyCa,
                    "verify-full" => Mode::VerifyFull,
                    other => {
                        return Err(bad(format!(
                            "storage.url sslmode `{other}` is not one of disable, prefer, require, verify-ca, verify-full"
                        )))
                    }
                }
            }
            "sslrootcert" => self.root = Some(value.to_string()),
            "sslcert" | "sslkey" | "sslpassword" | "sslcrl" => {
                return Err(bad(format!(
                    "storage.url `{key}`: client certificates and revocation lists are not supported; \
                     authenticate with a password (or trust) over sslmode=verify-full"
                )))
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The driver's own mode: whether it asks the server for TLS and whether it must get it.
    pub(crate) fn driver_mode(&self) -> SslMode {
        match self.mode {
            Mode::Disable => SslMode::Disable,
            Mode::Prefer => SslMode::Prefer,
            Mode::Require | Mode::VerifyCa | Mode::VerifyFull => SslMode::Require,
        }
    }

    /// The connector for every connection of the store (pooled and LISTEN).
    pub(crate) fn connector(&self) -> StoreResult<MakeRustlsConnect> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| StoreError::Internal(format!("TLS: {e}")))?;
        let checks_chain = matches!(self.mode, Mode::VerifyCa | Mode::VerifyFull)
            || (self.root.is_some() && self.mode != Mode::Disable);
        let verifier: Arc<dyn ServerCertVerifier> = if checks_chain {
            let roots = self.roots()?;
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| bad(format!("storage.url sslrootcert: {e}")))?;
            Arc::new(Checked {
                webpki,
                names: self.mode == Mode::VerifyFull,
            })
        } else {
            Arc::new(Unchecked(provider))
        };
        let config = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(MakeRustlsConnect::new(config))
    }

    fn roots(&self) -> StoreResult<RootCertStore> {
        let mut roots = RootCertStore::empty();
        match self.root.as_deref() {
            None | Some("system") => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
                if roots.is_empty() {
                    return Err(bad(
                        "storage.url asks to verify the server's certificate, and this host's \
                         certificate store is empty: set sslrootcert=/path/to/ca.pem"
                            .into(),
                    ));
                }
            }
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| bad(format!("storage.url sslrootcert `{path}`: {e}")))?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(bad(format!(
                        "storage.url sslrootcert `{path}` holds no certificate"
                    )));
                }
            }
        }
        Ok(roots)
    }
}

/// Checks the chain to the roots, and the host name when `names` (verify-full).
#[derive(Debug)]
struct Checked {
    webpki: Arc<WebPkiServerVerifier>,
    names: bool,
}

impl ServerCertVerifier for Checked {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.names => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// `prefer` and `require` without a root file, as libpq: encrypted, the certificate unchecked
/// (the handshake's signatures still are, so the key really is the certificate's).
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_values_are_libpqs_and_client_certificates_are_refused_by_name() {
        let mut tls = Tls::default();
        assert!(tls.take("sslmode", "verify-full").unwrap());
        assert_eq!(tls.mode, Mode::VerifyFull);
        assert_eq!(tls.driver_mode(), SslMode::Require);
        assert!(tls.take("sslrootcert", "/etc/ca.pem").unwrap());
        assert_eq!(tls.root.as_deref(), Some("/etc/ca.pem"));
        assert!(!tls.take("connect_timeout", "5").unwrap());
        let e = tls.take("sslmode", "allow-maybe").unwrap_err().to_string();
        assert!(e.contains("verify-full"), "{e}");
        let e = tls.take("sslcert", "/c.pem").unwrap_err().to_string();
        assert!(e.contains("client certificates"), "{e}");
        let missing = Tls {
            mode: Mode::VerifyCa,
            root: Some("/nonexistent/ca.pem".into()),
        };
        let e = missing
            .connector()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }
}
