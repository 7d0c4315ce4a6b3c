//! The OpenAI deployment (OpenAI, or any OpenAI-compatible server at `OPENAI_BASE_URL`): the
//! fast path. A request body is forwarded as the caller wrote it with only `model` rewritten,
//! and the answer (a stream included) comes back as the provider gave it — nothing here parses
//! a chat or an embedding. What is OpenAI's own is where its routes are
//! (`{OPENAI_BASE_URL}/chat/completions`, `/embeddings`, `/models`), its auth
//! (`Authorization: Bearer`) and the model list's shape.

use serde::Deserialize;

use super::ModelEntry;

#[derive(Deserialize)]
struct UpstreamModels {
    data: Vec<UpstreamModel>,
}

#[derive(Deserialize)]
struct UpstreamModel {
    id: String,
    created: Option<i64>,
    owned_by: Option<String>,
}

/// `GET /models`'s answer (`{"data": [{"id", "created", "owned_by"}]}`) as model entries named
/// `openai/<id>`.
pub fn models(bytes: &[u8]) -> Result<Vec<ModelEntry>, String> {
    let list: UpstreamModels = serde_json::from_slice(bytes)
        .map_err(|e| format!("GET /models is not a model list ({e})"))?;
    Ok(list
        .data
        .into_iter()
        .map(|m| ModelEntry {
            id: format!("openai/{}", m.id),
            created: m.created,
            owned_by: m.owned_by,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_are_listed_with_the_prefix() {
        let list = models(
            br#"{"object":"list","data":[{"id":"gpt-4o","created":1,"owned_by":"system"}]}"#,
        )
        .unwrap();
        assert_eq!(
            list,
            [ModelEntry {
                id: "openai/gpt-4o".into(),
                created: Some(1),
                owned_by: Some("system".into())
            }]
        );
        assert!(models(b"{}").is_err());
    }
}
