//! The `chat_request` fuzz target replayed on its committed corpus
//! (`fuzz/corpus/chat_request/`: hand-made request bodies plus every
//! minimized crash), through the same body cargo-fuzz runs.

use bitnet_model::fuzz::replay_corpus;

#[test]
fn chat_request_corpus() {
    replay_corpus("chat_request", bitnet_openai::fuzz::chat_request);
}
