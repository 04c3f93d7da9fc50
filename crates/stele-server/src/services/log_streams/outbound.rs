//! Outbound safety for log stream destinations: which addresses a stream may reach, the
//! HTTP client every destination uses (timeouts, no redirects, every resolved address
//! checked at connection time), and response bodies read with a cap.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

/// Longest wait for a TCP + TLS connection to a destination.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a whole request and response.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// Most response body bytes read from a destination (the rest is discarded).
pub const RESPONSE_BODY_CAP: usize = 64 * 1024;

/// Whether private destinations are allowed (`--allow-private-stream-destinations`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DestinationPolicy {
    pub allow_private: bool,
}

/// Whether `ip` is loopback, private, link-local, or otherwise not a public unicast
/// address a customer's SIEM or bucket could be on.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                // 100.64.0.0/10, carrier-grade NAT (shared address space).
                || (a == 100 && (64..128).contains(&b))
                // 192.0.0.0/24, IETF protocol assignments.
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // fc00::/7 unique local, fe80::/10 link-local.
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

impl DestinationPolicy {
    /// Parses a destination URL and checks that it names a scheme streams speak: what a
    /// well-formed endpoint must be whatever the policy (a malformed one is the request's
    /// error; a well-formed one [`DestinationPolicy::check_url`] refuses is the policy's).
    pub fn parse_url(&self, url: &str) -> Result<Url, String> {
        let parsed = Url::parse(url).map_err(|error| format!("not a valid URL: {error}"))?;
        match parsed.scheme() {
            "https" | "http" => Ok(parsed),
            other if self.allow_private => Err(format!(
                "the scheme {other}:// is not supported; use https:// or http://"
            )),
            other => Err(format!(
                "the scheme {other}:// is not supported; use https://"
            )),
        }
    }

    /// Checks a destination URL's form: `https://` (or `http://` when private destinations
    /// are allowed), a host, and, for an IP literal or `localhost`, a public address.
    pub fn check_url(&self, url: &str) -> Result<Url, String> {
        let parsed = self.parse_url(url)?;
        if parsed.scheme() == "http" && !self.allow_private {
            return Err(
                "plain http:// destinations are refused; use https:// (or start Stele with --allow-private-stream-destinations)".into(),
            );
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(
                "credentials in the URL are not accepted; use the destination's token settings"
                    .into(),
            );
        }
        let host = parsed.host_str().ok_or("the URL has no host")?;
        if !self.allow_private {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let literal = host.parse::<IpAddr>().ok();
            if literal.is_some_and(is_private)
                || host.eq_ignore_ascii_case("localhost")
                || host.to_ascii_lowercase().ends_with(".localhost")
            {
                return Err(format!("{host} is a loopback, private or link-local address; such destinations are refused unless Stele runs with --allow-private-stream-destinations"));
            }
        }
        Ok(parsed)
    }

    /// Checks a URL and, unless private destinations are allowed, every address its host
    /// resolves to now (at creation; the client checks again at every connection).
    pub async fn check_destination(&self, url: &str) -> Result<Url, String> {
        let parsed = self.check_url(url)?;
        if !self.allow_private {
            if let Some(host) = parsed.host_str() {
                let port = parsed.port_or_known_default().unwrap_or(443);
                // A name that does not resolve now may later: only a private answer refuses.
                if let Ok(addresses) = tokio::net::lookup_host((host, port)).await {
                    for address in addresses {
                        if is_private(address.ip()) {
                            return Err(format!("{host} resolves to {}, a loopback, private or link-local address; such destinations are refused unless Stele runs with --allow-private-stream-destinations", address.ip()));
                        }
                    }
                }
            }
        }
        Ok(parsed)
    }

    /// The HTTP client for destinations: connect and response timeouts, redirects never
    /// followed, and (unless private destinations are allowed) a resolver that refuses a
    /// name resolving to any private address, so a DNS answer that changes after the
    /// stream was created cannot reach the internal network.
    pub fn client(&self) -> reqwest::Client {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(RESPONSE_TIMEOUT)
            .user_agent(concat!("stele-log-streams/", env!("CARGO_PKG_VERSION")));
        if !self.allow_private {
            builder = builder.dns_resolver(Arc::new(PublicOnlyResolver));
        }
        builder.build().unwrap_or_else(|error| {
            tracing::error!(%error, "cannot build the log stream HTTP client; using defaults");
            reqwest::Client::new()
        })
    }
}

/// Resolves with the system resolver and refuses private answers.
struct PublicOnlyResolver;

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addresses: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(private) = addresses.iter().find(|address| is_private(address.ip())) {
                let message = format!(
                    "{host} resolves to {}, a loopback, private or link-local address (refused without --allow-private-stream-destinations)",
                    private.ip()
                );
                return Err(message.into());
            }
            let addresses: Addrs = Box::new(addresses.into_iter());
            Ok(addresses)
        })
    }
}

/// Reads at most [`RESPONSE_BODY_CAP`] bytes of a response body, as lossy UTF-8.
pub async fn capped_body(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = RESPONSE_BODY_CAP.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= RESPONSE_BODY_CAP {
            break;
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_and_link_local_addresses_are_recognised() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_private(private.parse().expect("ip")), "{private}");
        }
        for public in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "172.32.0.1"] {
            assert!(!is_private(public.parse().expect("ip")), "{public}");
        }
    }

    #[test]
    fn urls_need_https_and_a_public_host_unless_allowed() {
        let strict = DestinationPolicy {
            allow_private: false,
        };
        assert!(strict.check_url("https://siem.example.com/in").is_ok());
        for refused in [
            "http://siem.example.com/in",
            "https://127.0.0.1/in",
            "https://[::1]/in",
            "https://localhost/in",
            "https://169.254.169.254/latest",
            "ftp://siem.example.com/",
            "https://user:pw@siem.example.com/",
            "not a url",
        ] {
            assert!(strict.check_url(refused).is_err(), "{refused}");
        }
        let open = DestinationPolicy {
            allow_private: true,
        };
        assert!(open.check_url("http://127.0.0.1:9000/in").is_ok());
    }
}
