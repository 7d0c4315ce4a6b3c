//! DNS for Jarvis's outbound calls (HTTP agents, HTTP health checks, alert webhooks, model
//! providers): the system resolver, with the link-local and cloud metadata addresses of
//! `model::outbound` taken out of every answer (docs/api.md, Outbound URLs). A URL that names
//! such an address is refused where it is given; this catches a host *name* that resolves to
//! one, at connect time: a name with no other address fails to connect ("… resolves only to
//! refused addresses"), and the address is never called.

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The resolver to give a `reqwest::ClientBuilder` (`.dns_resolver(resolver::refusing())`).
pub fn refusing() -> Arc<RefusingResolver> {
    Arc::new(RefusingResolver)
}

/// [`Resolve`] through the system (`getaddrinfo`, on tokio's blocking pool, as reqwest's own
/// default does), keeping only the addresses Jarvis may call.
#[derive(Debug, Clone, Copy, Default)]
pub struct RefusingResolver;

impl Resolve for RefusingResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept = keep_callable(&host, found)?;
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

/// The addresses of `host` Jarvis may call; an error when it had some and none may be called.
pub fn keep_callable(
    host: &str,
    found: Vec<SocketAddr>,
) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
    let total = found.len();
    let kept: Vec<SocketAddr> = found
        .into_iter()
        .filter(|a| crate::model::outbound::refused_ip(a.ip()).is_none())
        .collect();
    if kept.is_empty() && total > 0 {
        return Err(format!(
            "{host} resolves only to refused addresses (link-local or cloud metadata; \
             JARVIS_OUTBOUND_ALLOW can allow them)"
        )
        .into());
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter()
            .map(|a| SocketAddr::new(a.parse().unwrap(), 0))
            .collect()
    }

    #[test]
    fn refused_addresses_are_taken_out_of_an_answer() {
        let kept = keep_callable("mixed", addrs(&["169.254.169.254", "10.0.0.7", "fe80::1"]));
        assert_eq!(kept.unwrap(), addrs(&["10.0.0.7"]));
        let e = keep_callable("sneaky", addrs(&["169.254.170.2"])).unwrap_err();
        assert!(
            e.to_string().contains("sneaky resolves only to refused"),
            "{e}"
        );
        assert!(keep_callable("nothing", vec![]).unwrap().is_empty());
    }

    #[tokio::test]
    async fn localhost_still_resolves() {
        let got = RefusingResolver
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap()
            .count();
        assert!(got > 0);
    }
}
