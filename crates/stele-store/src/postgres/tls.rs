//! TLS to PostgreSQL with rustls, configured by libpq's URL parameters.
//!
//! tokio-postgres knows `sslmode=disable|prefer|require` but neither `verify-ca`,
//! `verify-full` nor `sslrootcert`, and it refuses URLs that carry them. So the TLS
//! parameters are taken out of the URL here, the rest is handed to tokio-postgres, and the
//! rustls client configuration is chosen to match what libpq documents for each mode:
//!
//! | `sslmode`            | TLS                                       | server certificate          |
//! |----------------------|-------------------------------------------|-----------------------------|
//! | `disable`            | never                                     | not looked at               |
//! | `prefer` (default)   | when the server offers it, else plain     | not verified                |
//! | `require`            | always                                    | not verified, or as `verify-ca` when `sslrootcert` is given |
//! | `verify-ca`          | always                                    | signed by the `sslrootcert` CA |
//! | `verify-full`        | always                                    | signed by that CA and naming the host |
//!
//! `allow`, client certificates (`sslcert`, `sslkey`), `sslcrl` and `sslrootcert=system`
//! are refused with the reason rather than silently ignored.

use std::path::{Path, PathBuf};
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

/// libpq's `sslmode`, as far as Stele implements it (see the module table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// The TLS parameters a database URL carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: TlsMode,
    /// PEM file of the certificate authorities trusted to sign the server's certificate.
    pub root_cert: Option<PathBuf>,
}

/// A URL split into what tokio-postgres parses and the TLS settings it does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitUrl {
    /// The URL without `sslmode` and `sslrootcert`.
    pub url: String,
    pub tls: TlsSettings,
}

/// Takes the TLS parameters out of a `postgres://` URL's query.
pub fn split_url(url: &str) -> Result<SplitUrl, String> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept = Vec::new();
    let mut mode = TlsMode::Prefer;
    let mut root_cert = None;
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value)?;
        match percent_decode(key)?.as_str() {
            "sslmode" => {
                mode = match value.as_str() {
                    "disable" => TlsMode::Disable,
                    "prefer" => TlsMode::Prefer,
                    "require" => TlsMode::Require,
                    "verify-ca" => TlsMode::VerifyCa,
                    "verify-full" => TlsMode::VerifyFull,
                    "allow" => {
                        return Err("sslmode=allow is not supported; use disable, prefer, \
                                    require, verify-ca or verify-full"
                            .into())
                    }
                    other => {
                        return Err(format!(
                            "unknown sslmode '{other}'; expected disable, prefer, require, \
                             verify-ca or verify-full"
                        ))
                    }
                }
            }
            "sslrootcert" if value == "system" => {
                return Err(
                    "sslrootcert=system is not supported; name the PEM file of the \
                            certificate authority (sslrootcert=/path/to/ca.pem)"
                        .into(),
                )
            }
            "sslrootcert" if value.is_empty() => {
                return Err(
                    "sslrootcert is empty; name the PEM file of the certificate \
                            authority"
                        .into(),
                )
            }
            "sslrootcert" => root_cert = Some(PathBuf::from(value)),
            key @ ("sslcert" | "sslkey" | "sslpassword" | "sslcrl" | "sslcrldir") => {
                return Err(format!(
                    "{key} is not supported: Stele authenticates to PostgreSQL with the URL's \
                     user and password, and verifies the server with sslrootcert"
                ))
            }
            _ => kept.push(pair),
        }
    }
    if matches!(mode, TlsMode::VerifyCa | TlsMode::VerifyFull) && root_cert.is_none() {
        let name = if mode == TlsMode::VerifyCa {
            "verify-ca"
        } else {
            "verify-full"
        };
        return Err(format!(
            "sslmode={name} needs sslrootcert=<file>: the PEM file of the certificate \
             authority that signed the server's certificate"
        ));
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok(SplitUrl {
        url,
        tls: TlsSettings { mode, root_cert },
    })
}

/// The tokio-postgres `sslmode` and the rustls connector for `settings`; reads the CA file.
pub fn connector(settings: &TlsSettings) -> Result<(SslMode, MakeRustlsConnect), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match (settings.mode, &settings.root_cert) {
        (TlsMode::VerifyFull, Some(path)) => web_pki_verifier(path, &provider)?,
        // libpq: with a root certificate, `require` verifies the chain as `verify-ca` does.
        (TlsMode::VerifyCa | TlsMode::Require, Some(path)) => Arc::new(ChainOnly {
            inner: web_pki_verifier(path, &provider)?,
        }),
        _ => Arc::new(Unverified {
            provider: Arc::clone(&provider),
        }),
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("configuring TLS: {error}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    let ssl_mode = match settings.mode {
        TlsMode::Disable => SslMode::Disable,
        TlsMode::Prefer => SslMode::Prefer,
        TlsMode::Require | TlsMode::VerifyCa | TlsMode::VerifyFull => SslMode::Require,
    };
    Ok((ssl_mode, MakeRustlsConnect::new(config)))
}

fn web_pki_verifier(
    path: &Path,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, String> {
    let shown = path.display();
    let mut roots = RootCertStore::empty();
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|error| format!("cannot read sslrootcert {shown}: {error}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("sslrootcert {shown} is not a PEM certificate file: {error}"))?;
    if certificates.is_empty() {
        return Err(format!("sslrootcert {shown} holds no PEM certificate"));
    }
    for certificate in certificates {
        roots
            .add(certificate)
            .map_err(|error| format!("sslrootcert {shown}: {error}"))?;
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
        .build()
        .map_err(|error| format!("sslrootcert {shown}: {error}"))
}

/// `verify-ca`: the chain must lead to a trusted CA; the name in the certificate is not
/// compared with the host.
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `prefer` and `require` without a CA: encrypted, but any certificate is accepted (as
/// libpq does); the handshake's signatures are still checked against that certificate.
#[derive(Debug)]
struct Unverified {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Decodes `%XX` escapes (a URL query value such as a CA file path).
fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = text
                .get(index + 1..index + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or_else(|| format!("invalid percent escape in the database URL: '{text}'"))?;
            out.push(hex);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("the database URL parameter '{text}' is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(url: &str) -> SplitUrl {
        split_url(url).expect("a valid URL")
    }

    #[test]
    fn tls_parameters_are_taken_out_of_the_url() {
        let parsed = split(
            "postgres://u@db:5432/x?application_name=a&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=3",
        );
        assert_eq!(
            parsed.url,
            "postgres://u@db:5432/x?application_name=a&connect_timeout=3"
        );
        assert_eq!(parsed.tls.mode, TlsMode::VerifyFull);
        assert_eq!(parsed.tls.root_cert, Some(PathBuf::from("/etc/ca.pem")));
        let plain = split("postgres://u@db/x");
        assert_eq!(plain.url, "postgres://u@db/x");
        assert_eq!(plain.tls.mode, TlsMode::Prefer, "libpq's default");
        assert_eq!(
            split("postgres://db/x?sslmode=disable").url,
            "postgres://db/x"
        );
        assert_eq!(
            split("postgres://db/x?sslmode=require").tls.mode,
            TlsMode::Require
        );
        assert_eq!(
            split("postgres://db/x?sslmode=verify-ca&sslrootcert=ca.pem")
                .tls
                .mode,
            TlsMode::VerifyCa
        );
    }

    #[test]
    fn unsupported_or_incomplete_tls_parameters_are_refused_with_the_reason() {
        let error = |url: &str| split_url(url).expect_err(url);
        assert!(error("postgres://db/x?sslmode=verify-full").contains("needs sslrootcert"));
        assert!(error("postgres://db/x?sslmode=verify-ca").contains("needs sslrootcert"));
        assert!(error("postgres://db/x?sslmode=allow").contains("not supported"));
        assert!(error("postgres://db/x?sslmode=bogus").contains("unknown sslmode"));
        assert!(error("postgres://db/x?sslcert=c.pem").contains("sslcert is not supported"));
        assert!(error("postgres://db/x?sslmode=verify-full&sslrootcert=system").contains("system"));
        assert!(error("postgres://db/x?sslrootcert=%zz").contains("percent escape"));
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("missing.pem");
        let settings = TlsSettings {
            mode: TlsMode::VerifyFull,
            root_cert: Some(missing.clone()),
        };
        let error = connector(&settings).err().expect("no such file");
        assert!(
            error.contains("cannot read sslrootcert") && error.contains("missing.pem"),
            "{error}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        let settings = TlsSettings {
            mode: TlsMode::VerifyFull,
            root_cert: Some(empty),
        };
        let error = connector(&settings).err().expect("no certificate");
        assert!(error.contains("holds no PEM certificate"), "{error}");
        let (mode, _) = connector(&TlsSettings {
            mode: TlsMode::Disable,
            root_cert: None,
        })
        .expect("no CA needed");
        assert_eq!(mode, SslMode::Disable);
    }
}
