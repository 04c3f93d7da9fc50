//! Destination settings: what each stream type takes over the API (names fixed by the
//! contract), split into the settings that may be shown (kept as JSON) and the secrets
//! (sealed, never returned), and turned back into a [`Destination`] for delivery.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde_json::{json, Map, Value};
use stele_core::log_stream::LogStreamType;
use stele_core::FieldError;

/// Longest text setting accepted (endpoints, buckets, prefixes, tokens).
pub const MAX_SETTING_CHARS: usize = 2048;
/// Most custom headers of a `GenericHttps` stream.
pub const MAX_HEADERS: usize = 20;
/// Longest `service_account_key` (a Google service account JSON key).
pub const MAX_SERVICE_ACCOUNT_KEY_CHARS: usize = 16 * 1024;

/// Headers a `GenericHttps` stream may not set: Stele sets them (or they would change how
/// the request is framed).
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// Settings parsed from a create request: `public` is kept as JSON and shown,
/// `secrets` is sealed (absent when the destination has none).
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSettings {
    pub public: Value,
    pub secrets: Option<Value>,
}

/// Where and how a stream delivers, with its secrets opened.
#[derive(Clone)]
pub enum Destination {
    GenericHttps {
        endpoint: String,
        headers: Vec<(String, String)>,
        /// The Standard Webhooks signing key (the bytes after `whsec_`).
        secret: Option<Vec<u8>>,
    },
    Splunk {
        endpoint: String,
        token: String,
        index: Option<String>,
        source: Option<String>,
    },
    Datadog {
        endpoint: String,
        api_key: String,
    },
    S3 {
        bucket: String,
        region: String,
        endpoint: Option<String>,
        access_key_id: String,
        secret_access_key: String,
        prefix: String,
    },
    GoogleCloudStorage {
        bucket: String,
        service_account_key: Option<String>,
        endpoint: Option<String>,
        prefix: String,
    },
}

struct Reader<'a> {
    body: &'a Map<String, Value>,
    errors: Vec<FieldError>,
}

impl<'a> Reader<'a> {
    fn text(&mut self, field: &str, required: bool, max: usize) -> Option<String> {
        match self.body.get(field) {
            None | Some(Value::Null) => {
                if required {
                    self.errors.push(FieldError::required(field));
                }
                None
            }
            Some(Value::String(text)) if text.trim().is_empty() => {
                self.errors.push(FieldError::invalid(
                    field,
                    format!("{field} must not be empty"),
                ));
                None
            }
            Some(Value::String(text)) if text.chars().count() > max => {
                self.errors.push(FieldError::invalid(
                    field,
                    format!("{field} must be at most {max} characters"),
                ));
                None
            }
            Some(Value::String(text)) => Some(text.clone()),
            Some(_) => {
                self.errors
                    .push(FieldError::invalid_type(field, "a string"));
                None
            }
        }
    }
}

/// Joins `path` to a base URL unless the URL already ends with it.
fn with_path(base: &str, path: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with(path) {
        base.to_owned()
    } else {
        format!("{base}{path}")
    }
}

/// Parses the destination settings of a create request of type `kind`.
pub fn parse_settings(
    kind: LogStreamType,
    body: &Map<String, Value>,
) -> Result<ParsedSettings, Vec<FieldError>> {
    let mut read = Reader {
        body,
        errors: Vec::new(),
    };
    let max = MAX_SETTING_CHARS;
    let parsed = match kind {
        LogStreamType::GenericHttps => {
            let endpoint = read.text("endpoint", true, max);
            let secret = read.text("secret", false, max);
            if let Some(secret) = &secret {
                let key = secret.strip_prefix("whsec_").map(|key| BASE64.decode(key));
                if !matches!(key, Some(Ok(ref bytes)) if bytes.len() >= 16) {
                    read.errors.push(FieldError::invalid(
                        "secret",
                        "secret must be whsec_ followed by the base64 of at least 16 random bytes (Standard Webhooks)",
                    ));
                }
            }
            let mut headers = BTreeMap::new();
            match body.get("headers") {
                None | Some(Value::Null) => {}
                Some(Value::Object(given)) if given.len() > MAX_HEADERS => read.errors.push(
                    FieldError::invalid("headers", format!("at most {MAX_HEADERS} headers")),
                ),
                Some(Value::Object(given)) => {
                    for (name, value) in given {
                        let field = format!("headers.{name}");
                        let valid_name =
                            reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_ok();
                        match value {
                            Value::String(value)
                                if valid_name
                                    && value.len() <= max
                                    && reqwest::header::HeaderValue::from_str(value).is_ok() =>
                            {
                                if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                                    read.errors.push(FieldError::invalid(
                                        field,
                                        format!("the {name} header is set by Stele"),
                                    ));
                                } else {
                                    headers.insert(name.clone(), value.clone());
                                }
                            }
                            _ => read.errors.push(FieldError::invalid(
                                field,
                                "each header needs a valid name and a string value",
                            )),
                        }
                    }
                }
                Some(_) => read
                    .errors
                    .push(FieldError::invalid_type("headers", "an object of strings")),
            }
            let mut secrets = Map::new();
            if let Some(secret) = secret {
                secrets.insert("secret".into(), Value::String(secret));
            }
            if !headers.is_empty() {
                secrets.insert("headers".into(), json!(headers));
            }
            ParsedSettings {
                public: json!({
                    "endpoint": endpoint,
                    "header_names": headers.keys().collect::<Vec<_>>(),
                    "signed": secrets.contains_key("secret"),
                }),
                secrets: (!secrets.is_empty()).then_some(Value::Object(secrets)),
            }
        }
        LogStreamType::Splunk => {
            let endpoint = read.text("endpoint", true, max);
            let token = read.text("token", true, max);
            let index = read.text("index", false, max);
            let source = read.text("source", false, max);
            ParsedSettings {
                public: json!({"endpoint": endpoint, "index": index, "source": source}),
                secrets: Some(json!({ "token": token })),
            }
        }
        LogStreamType::Datadog => {
            let endpoint = read.text("endpoint", false, max);
            let site = read.text("site", false, 255);
            let api_key = read.text("api_key", true, max);
            let endpoint = match (endpoint, site) {
                (Some(endpoint), None) => Some(endpoint),
                (None, Some(site)) => {
                    if site
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
                    {
                        Some(format!("https://http-intake.logs.{site}"))
                    } else {
                        read.errors.push(FieldError::invalid(
                            "site",
                            "site is a Datadog site such as datadoghq.com or datadoghq.eu",
                        ));
                        None
                    }
                }
                (Some(_), Some(_)) => {
                    read.errors.push(FieldError::invalid(
                        "site",
                        "give either endpoint or site, not both",
                    ));
                    None
                }
                (None, None) => {
                    read.errors.push(FieldError::invalid(
                        "endpoint",
                        "endpoint or site is required",
                    ));
                    None
                }
            };
            ParsedSettings {
                public: json!({"endpoint": endpoint}),
                secrets: Some(json!({ "api_key": api_key })),
            }
        }
        LogStreamType::S3 => {
            let bucket = read.text("bucket", true, 255);
            let region = read.text("region", true, 64);
            let endpoint = read.text("endpoint", false, max);
            let access_key_id = read.text("access_key_id", true, 256);
            let secret_access_key = read.text("secret_access_key", true, max);
            let prefix = read.text("prefix", false, 512);
            ParsedSettings {
                public: json!({"bucket": bucket, "region": region, "endpoint": endpoint,
                               "access_key_id": access_key_id, "prefix": prefix}),
                secrets: Some(json!({ "secret_access_key": secret_access_key })),
            }
        }
        LogStreamType::GoogleCloudStorage => {
            let bucket = read.text("bucket", true, 255);
            let key = read.text("service_account_key", false, MAX_SERVICE_ACCOUNT_KEY_CHARS);
            let endpoint = read.text("endpoint", false, max);
            let prefix = read.text("prefix", false, 512);
            if let Some(key) = &key {
                if serde_json::from_str::<Map<String, Value>>(key).is_err() {
                    read.errors.push(FieldError::invalid(
                        "service_account_key",
                        "service_account_key is the JSON key file of a service account",
                    ));
                }
            }
            ParsedSettings {
                public: json!({"bucket": bucket, "endpoint": endpoint, "prefix": prefix}),
                secrets: key.map(|key| json!({ "service_account_key": key })),
            }
        }
    };
    if read.errors.is_empty() {
        Ok(parsed)
    } else {
        Err(read.errors)
    }
}

/// The endpoint URL a stream of these settings sends to, if it names one (object stores
/// without an `endpoint` use the provider's public endpoint).
pub fn destination_url(public: &Value) -> Option<String> {
    public
        .get("endpoint")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn text(value: &Value, name: &str) -> Option<String> {
    value.get(name).and_then(Value::as_str).map(str::to_owned)
}

fn required(value: &Value, name: &str) -> Result<String, String> {
    text(value, name).ok_or_else(|| format!("the stream's stored settings lack {name}"))
}

/// The destination of a stream from its stored settings and opened secrets.
pub fn destination(
    kind: LogStreamType,
    public: &Value,
    secrets: &Value,
) -> Result<Destination, String> {
    Ok(match kind {
        LogStreamType::GenericHttps => Destination::GenericHttps {
            endpoint: required(public, "endpoint")?,
            headers: secrets
                .get("headers")
                .and_then(Value::as_object)
                .map(|headers| {
                    headers
                        .iter()
                        .filter_map(|(name, value)| {
                            value.as_str().map(|value| (name.clone(), value.to_owned()))
                        })
                        .collect()
                })
                .unwrap_or_default(),
            secret: match text(secrets, "secret") {
                Some(secret) => Some(
                    secret
                        .strip_prefix("whsec_")
                        .and_then(|key| BASE64.decode(key).ok())
                        .ok_or("the stream's stored secret is not a whsec_ key")?,
                ),
                None => None,
            },
        },
        LogStreamType::Splunk => Destination::Splunk {
            endpoint: with_path(&required(public, "endpoint")?, "/services/collector/event"),
            token: required(secrets, "token")?,
            index: text(public, "index"),
            source: text(public, "source"),
        },
        LogStreamType::Datadog => Destination::Datadog {
            endpoint: with_path(&required(public, "endpoint")?, "/api/v2/logs"),
            api_key: required(secrets, "api_key")?,
        },
        LogStreamType::S3 => Destination::S3 {
            bucket: required(public, "bucket")?,
            region: required(public, "region")?,
            endpoint: text(public, "endpoint"),
            access_key_id: required(public, "access_key_id")?,
            secret_access_key: required(secrets, "secret_access_key")?,
            prefix: text(public, "prefix").unwrap_or_default(),
        },
        LogStreamType::GoogleCloudStorage => Destination::GoogleCloudStorage {
            bucket: required(public, "bucket")?,
            service_account_key: text(secrets, "service_account_key"),
            endpoint: text(public, "endpoint"),
            prefix: text(public, "prefix").unwrap_or_default(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().expect("object")
    }

    #[test]
    fn secrets_are_split_from_the_settings_shown() {
        let parsed = parse_settings(
            LogStreamType::GenericHttps,
            &object(json!({"endpoint": "https://siem.example.com/in",
                           "headers": {"Authorization": "Bearer abc"},
                           "secret": format!("whsec_{}", BASE64.encode([1u8; 24]))})),
        )
        .expect("valid");
        let shown = parsed.public.to_string();
        assert!(
            !shown.contains("Bearer abc") && !shown.contains("whsec_"),
            "{shown}"
        );
        assert_eq!(parsed.public["header_names"], json!(["Authorization"]));
        let secrets = parsed.secrets.expect("secrets");
        assert_eq!(secrets["headers"]["Authorization"], "Bearer abc");
        let Destination::GenericHttps { secret, .. } =
            destination(LogStreamType::GenericHttps, &parsed.public, &secrets).expect("dest")
        else {
            panic!("GenericHttps");
        };
        assert_eq!(secret, Some(vec![1u8; 24]));
    }

    #[test]
    fn missing_and_malformed_settings_are_listed() {
        let errors = parse_settings(LogStreamType::Splunk, &object(json!({"index": 3})))
            .expect_err("invalid");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["endpoint", "token", "index"]);
        assert!(parse_settings(
            LogStreamType::GenericHttps,
            &object(json!({"endpoint": "https://x.example", "secret": "plain"}))
        )
        .is_err());
        assert!(parse_settings(
            LogStreamType::GenericHttps,
            &object(json!({"endpoint": "https://x.example", "headers": {"webhook-id": "x"}}))
        )
        .is_err());
        let datadog = parse_settings(
            LogStreamType::Datadog,
            &object(json!({"site": "datadoghq.eu", "api_key": "k"})),
        )
        .expect("valid");
        assert_eq!(
            datadog.public["endpoint"],
            "https://http-intake.logs.datadoghq.eu"
        );
    }

    #[test]
    fn service_paths_are_appended_once() {
        assert_eq!(
            with_path("https://splunk.example:8088/", "/services/collector/event"),
            "https://splunk.example:8088/services/collector/event"
        );
        assert_eq!(
            with_path("https://x/api/v2/logs", "/api/v2/logs"),
            "https://x/api/v2/logs"
        );
    }
}
