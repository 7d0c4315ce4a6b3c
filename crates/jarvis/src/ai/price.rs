//! What a model call costs: token usage × a price per million tokens.
//!
//! The table starts from the providers' public list prices of the common models (below, as
//! published in 2025; USD per million tokens, standard tier, no batch or cache discounts) and
//! takes overrides from the config file (`[ai.prices."<provider>/<model>"]`, docs/api.md), which
//! win. A model is found by its provider and the longest listed name that is the model's name
//! or a prefix of it ending at a `-` (`gpt-4o-2024-08-06` is priced as `gpt-4o`,
//! `gpt-4o-mini-2024-07-18` as `gpt-4o-mini`). A model with no price costs nothing and is
//! logged once, so an operator sees what to add.

use std::collections::BTreeMap;
use std::sync::Mutex;

pub use crate::model::ai::Price;

/// List prices of the common models, `provider/model`.
const DEFAULTS: &[(&str, Price)] = &[
    // OpenAI.
    ("openai/gpt-5", Price::new(1.25, 10.0)),
    ("openai/gpt-5-mini", Price::new(0.25, 2.0)),
    ("openai/gpt-5-nano", Price::new(0.05, 0.40)),
    ("openai/gpt-4.1", Price::new(2.0, 8.0)),
    ("openai/gpt-4.1-mini", Price::new(0.40, 1.60)),
    ("openai/gpt-4.1-nano", Price::new(0.10, 0.40)),
    ("openai/gpt-4o", Price::new(2.50, 10.0)),
    ("openai/gpt-4o-mini", Price::new(0.15, 0.60)),
    ("openai/gpt-4-turbo", Price::new(10.0, 30.0)),
    ("openai/gpt-3.5-turbo", Price::new(0.50, 1.50)),
    ("openai/o1", Price::new(15.0, 60.0)),
    ("openai/o1-mini", Price::new(1.10, 4.40)),
    ("openai/o3", Price::new(2.0, 8.0)),
    ("openai/o3-mini", Price::new(1.10, 4.40)),
    ("openai/o4-mini", Price::new(1.10, 4.40)),
    ("openai/text-embedding-3-small", Price::new(0.02, 0.0)),
    ("openai/text-embedding-3-large", Price::new(0.13, 0.0)),
    ("openai/text-embedding-ada-002", Price::new(0.10, 0.0)),
    // Anthropic.
    ("anthropic/claude-opus-4-5", Price::new(5.0, 25.0)),
    ("anthropic/claude-opus-4", Price::new(15.0, 75.0)),
    ("anthropic/claude-sonnet-4", Price::new(3.0, 15.0)),
    ("anthropic/claude-haiku-4-5", Price::new(1.0, 5.0)),
    ("anthropic/claude-3-7-sonnet", Price::new(3.0, 15.0)),
    ("anthropic/claude-3-5-sonnet", Price::new(3.0, 15.0)),
    ("anthropic/claude-3-5-haiku", Price::new(0.80, 4.0)),
    ("anthropic/claude-3-opus", Price::new(15.0, 75.0)),
    ("anthropic/claude-3-haiku", Price::new(0.25, 1.25)),
    // Gemini.
    ("gemini/gemini-2.5-pro", Price::new(1.25, 10.0)),
    ("gemini/gemini-2.5-flash", Price::new(0.30, 2.50)),
    ("gemini/gemini-2.5-flash-lite", Price::new(0.10, 0.40)),
    ("gemini/gemini-2.0-flash", Price::new(0.10, 0.40)),
    ("gemini/gemini-2.0-flash-lite", Price::new(0.075, 0.30)),
    ("gemini/gemini-1.5-pro", Price::new(1.25, 5.0)),
    ("gemini/gemini-1.5-flash", Price::new(0.075, 0.30)),
    ("gemini/gemini-embedding-001", Price::new(0.15, 0.0)),
    ("gemini/text-embedding-004", Price::new(0.0, 0.0)),
];

/// The prices Jarvis charges calls at.
#[derive(Debug)]
pub struct PriceTable {
    /// `provider/model` → price; overrides already applied.
    prices: BTreeMap<String, Price>,
    /// Models already reported as unpriced (logged once each).
    unpriced: Mutex<std::collections::HashSet<String>>,
}

impl PriceTable {
    /// The defaults with `overrides` (`provider/model` → price) on top.
    pub fn new(overrides: &BTreeMap<String, Price>) -> PriceTable {
        let mut prices: BTreeMap<String, Price> = DEFAULTS
            .iter()
            .map(|(name, price)| (name.to_string(), *price))
            .collect();
        prices.extend(overrides.iter().map(|(k, v)| (k.clone(), *v)));
        PriceTable {
            prices,
            unpriced: Mutex::default(),
        }
    }

    /// The price of `model` of `provider` (`openai`, `anthropic`, `gemini`): the longest
    /// listed name that is `model` or a `-`-bounded prefix of it.
    pub fn price(&self, provider: &str, model: &str) -> Option<Price> {
        let full = format!("{provider}/{model}");
        // Candidates are the prefixes of `full` ending at a `-` or at its end; the longest
        // listed one wins.
        let mut end = full.len();
        loop {
            if let Some(p) = self.prices.get(&full[..end]) {
                return Some(*p);
            }
            match full[..end].rfind('-') {
                Some(i) if i > provider.len() + 1 => end = i,
                _ => return None,
            }
        }
    }

    /// The cost of a call, or `None` (logged once per model) when the model has no price.
    pub fn cost(
        &self,
        provider: &str,
        model: &str,
        prompt_tokens: u64,
        completion_tokens: u64,
    ) -> Option<f64> {
        match self.price(provider, model) {
            Some(p) => Some(p.cost(prompt_tokens, completion_tokens)),
            None => {
                let key = format!("{provider}/{model}");
                let mut seen = self.unpriced.lock().unwrap_or_else(|p| p.into_inner());
                if seen.len() < 1_000 && seen.insert(key.clone()) {
                    tracing::warn!(
                        model = %key,
                        "no price for this model: its calls are counted at $0 (add it under \
                         [ai.prices] in the config file)"
                    );
                }
                None
            }
        }
    }

    /// Every price, by `provider/model` (for `GET /api/v1/ai/prices`).
    pub fn all(&self) -> &BTreeMap<String, Price> {
        &self.prices
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> PriceTable {
        PriceTable::new(&BTreeMap::new())
    }

    #[test]
    fn dated_versions_are_priced_as_their_family() {
        let t = table();
        let check = |provider, model, expected: Option<(f64, f64)>| {
            let got = t
                .price(provider, model)
                .map(|p| (p.input_per_million, p.output_per_million));
            assert_eq!(got, expected, "{provider}/{model}");
        };
        check("openai", "gpt-4o", Some((2.50, 10.0)));
        check("openai", "gpt-4o-2024-08-06", Some((2.50, 10.0)));
        check("openai", "gpt-4o-mini-2024-07-18", Some((0.15, 0.60)));
        check("openai", "gpt-4o-mini", Some((0.15, 0.60)));
        check("openai", "o3-mini-2025-01-31", Some((1.10, 4.40)));
        check("anthropic", "claude-3-5-haiku-20241022", Some((0.80, 4.0)));
        check("anthropic", "claude-sonnet-4-20250514", Some((3.0, 15.0)));
        check("gemini", "gemini-2.5-flash-lite", Some((0.10, 0.40)));
        check(
            "gemini",
            "gemini-2.5-flash-preview-05-20",
            Some((0.30, 2.50)),
        );
        // A name that merely starts with a listed one, not at a `-`, is another model.
        check("openai", "gpt-4oz", None);
        check("openai", "my-finetune", None);
        // The provider is part of the key.
        check("anthropic", "gpt-4o", None);
    }

    #[test]
    fn cost_is_tokens_times_price_per_million() {
        let t = table();
        let cost = t.cost("openai", "gpt-4o-mini", 1_000_000, 500_000).unwrap();
        assert!((cost - (0.15 + 0.30)).abs() < 1e-12, "{cost}");
        let cost = t.cost("openai", "gpt-4o", 1_200, 300).unwrap();
        assert!((cost - (1_200.0 * 2.5 + 300.0 * 10.0) / 1e6).abs() < 1e-15);
        assert_eq!(t.cost("openai", "unknown-model", 10, 10), None);
    }

    #[test]
    fn overrides_win_and_add_models() {
        let overrides = BTreeMap::from([
            ("openai/gpt-4o".to_string(), Price::new(1.0, 2.0)),
            ("openai/my-finetune".to_string(), Price::new(3.0, 4.0)),
        ]);
        let t = PriceTable::new(&overrides);
        assert_eq!(
            t.price("openai", "gpt-4o-2024-08-06"),
            Some(Price::new(1.0, 2.0))
        );
        assert_eq!(
            t.price("openai", "my-finetune-v2"),
            Some(Price::new(3.0, 4.0))
        );
        // Untouched defaults stay.
        assert_eq!(
            t.price("openai", "gpt-4o-mini"),
            Some(Price::new(0.15, 0.60))
        );
    }

    #[test]
    fn every_default_is_valid_and_listed_once() {
        let mut seen = std::collections::HashSet::new();
        for (name, price) in DEFAULTS {
            assert!(price.is_valid(), "{name}");
            assert!(seen.insert(*name), "{name} listed twice");
            assert!(name.split_once('/').is_some(), "{name}");
        }
        assert!(!Price::new(-1.0, 0.0).is_valid());
        assert!(!Price::new(f64::NAN, 0.0).is_valid());
    }
}
