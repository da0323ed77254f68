//! Hybrid document retrieval end to end: passages embedded through the in-process model layer
//! by a simulated embeddings deployment, kept embedded beside the text index or in pgvector
//! (when `CROSSBAR_TEST_POSTGRES_URL` names a server with the extension), and fused with BM25
//! so that a query finds a passage by an inflection BM25 cannot match.

#![expect(clippy::unwrap_used, reason = "test code: a failure fails the test")]

mod common;

use std::path::Path;
use std::sync::Arc;

use crossbar_agent::tools::retrieval::vectors::{Backend, Embedder};
use crossbar_agent::tools::retrieval::{DocIndex, Embedding, Ingested, ingest};
use crossbar_agent::{AgentModel, Entry, InProcess, RetrievalMode};
use crossbar_store::{JournalStore, SqlStore, VectorStore};

fn write_docs(docs: &Path) {
    std::fs::create_dir_all(docs).unwrap();
    std::fs::write(
        docs.join("refunds.md"),
        "Refunds are issued within 14 days.",
    )
    .unwrap();
    std::fs::write(
        docs.join("shipping.md"),
        "Shipping is free for orders over 50 euros.",
    )
    .unwrap();
    std::fs::write(
        docs.join("hours.md"),
        "The shop opens at 9 and closes at 18.",
    )
    .unwrap();
}

fn embedder(h: &common::Harness, name: &str) -> Embedder {
    Embedder {
        model: Arc::new(InProcess::new(Arc::clone(&h.gateway.router))) as Arc<dyn AgentModel>,
        name: name.to_owned(),
    }
}

/// Vectors from `model`, embedded beside the index.
fn embedded(h: &common::Harness, model: &str) -> Option<Embedding> {
    Some(Embedding {
        embedder: embedder(h, model),
        store: None,
    })
}

fn paths(hits: &[crossbar_agent::tools::retrieval::Hit]) -> Vec<&str> {
    hits.iter().map(|h| h.path.as_str()).collect()
}

/// What both backends must do with the same documents.
async fn hybrid_finds_what_bm25_misses(index: &DocIndex) {
    assert_eq!(index.mode(), RetrievalMode::Hybrid);
    // "refunding" shares no word with any passage: BM25 finds nothing, the vectors the
    // refunds passage (the simulator's embeddings place inflections near each other).
    assert!(index.search_text("refunding", 3).unwrap().is_empty());
    let found = index.search("refunding", 1).await.unwrap();
    assert_eq!(paths(&found.hits), ["refunds.md"], "{found:?}");
    assert_eq!(
        (found.hits[0].bm25_rank, found.hits[0].vector_rank),
        (None, Some(1))
    );
    assert!(found.hits[0].text.contains("14 days"));
    assert!(found.notice.is_none());
    // An exact-word query: both rankings agree, and the fused hit says so.
    let found = index.search("when does the shop open", 3).await.unwrap();
    assert_eq!(found.hits[0].path, "hours.md", "{found:?}");
    assert_eq!(found.hits[0].bm25_rank, Some(1));
    assert_eq!(found.hits[0].vector_rank, Some(1));
    assert_eq!(found.hits.len(), 3, "vectors always rank every passage");
}

#[tokio::test]
async fn embedded_vectors_make_search_hybrid_and_stay_in_step_with_the_text() {
    let h = common::harness(common::CONFIG).await;
    let docs = h.path("docs");
    let index = h.path("index");
    write_docs(&docs);
    let done = ingest(&docs, &index, embedded(&h, "embed"), |_, _| {})
        .await
        .unwrap();
    assert_eq!(
        (done.files, done.passages, done.embedded, done.vectors),
        (3, 3, 3, Some(Backend::Embedded))
    );
    assert!(done.embedding_tokens > 0);

    let model = Arc::new(InProcess::new(Arc::clone(&h.gateway.router))) as Arc<dyn AgentModel>;
    let hybrid = DocIndex::open(&index, None, Some(Arc::clone(&model)), None).unwrap();
    hybrid_finds_what_bm25_misses(&hybrid).await;
    let bm25 = DocIndex::open(&index, Some(RetrievalMode::Bm25), None, None).unwrap();
    assert!(bm25.search("refunding", 3).await.unwrap().hits.is_empty());

    // Re-ingesting must keep vectors and text in step: no embedder, or another model, is
    // refused; an edited file's old vectors go.
    let refused = ingest(&docs, &index, None, |_, _| {}).await.unwrap_err();
    assert!(refused.contains("--embeddings embed"), "{refused}");
    let other = embedded(&h, "smart");
    let refused = ingest(&docs, &index, other, |_, _| {}).await.unwrap_err();
    assert!(refused.contains("cannot be compared"), "{refused}");
    std::fs::write(docs.join("refunds.md"), "Returns are accepted for 30 days.").unwrap();
    let again = embedded(&h, "embed");
    let done: Ingested = ingest(&docs, &index, again, |_, _| {}).await.unwrap();
    assert_eq!(done.embedded, 3);
    let hybrid = DocIndex::open(&index, Some(RetrievalMode::Vector), Some(model), None).unwrap();
    let found = hybrid.search("returned", 5).await.unwrap();
    assert_eq!(found.hits.len(), 3, "one vector per passage: {found:?}");
    assert_eq!(found.hits[0].path, "refunds.md");
    assert!(found.hits[0].text.starts_with("Returns"), "{found:?}");
}

#[tokio::test]
async fn an_ingestion_that_fails_part_way_is_completed_by_the_next() {
    let h = common::harness(common::CONFIG).await;
    let docs = h.path("docs");
    let index = h.path("index");
    write_docs(&docs);
    let sim = &h.gateway.sims["sim-openai"];
    let healthy = sim.config();
    // The embeddings provider fails from the second file on.
    let failed = ingest(&docs, &index, embedded(&h, "embed"), |done, _| {
        if done == 1 {
            sim.set_config(crossbar_sim::SimConfig {
                error_rate: 1.0,
                error_status: 400,
                ..healthy.clone()
            });
        }
    })
    .await
    .unwrap_err();
    assert!(failed.contains("embeddings model `embed`"), "{failed}");
    sim.set_config(healthy);
    let done = ingest(&docs, &index, embedded(&h, "embed"), |_, _| {})
        .await
        .unwrap();
    assert_eq!((done.files, done.embedded), (3, 3));
    let model = Arc::new(InProcess::new(Arc::clone(&h.gateway.router))) as Arc<dyn AgentModel>;
    let index = DocIndex::open(&index, None, Some(model), None).unwrap();
    hybrid_finds_what_bm25_misses(&index).await;
}

#[tokio::test]
async fn hybrid_falls_back_to_bm25_when_the_embeddings_provider_fails() {
    let h = common::harness(common::CONFIG).await;
    let docs = h.path("docs");
    let index = h.path("index");
    write_docs(&docs);
    let embedding = embedded(&h, "embed");
    ingest(&docs, &index, embedding, |_, _| {}).await.unwrap();
    let model = Arc::new(InProcess::new(Arc::clone(&h.gateway.router))) as Arc<dyn AgentModel>;
    let hybrid = DocIndex::open(&index, None, Some(Arc::clone(&model)), None).unwrap();
    let vector = DocIndex::open(&index, Some(RetrievalMode::Vector), Some(model), None).unwrap();
    let sim = &h.gateway.sims["sim-openai"];
    sim.set_config(crossbar_sim::SimConfig {
        error_rate: 1.0,
        error_status: 400,
        ..sim.config()
    });
    let found = hybrid.search("shop opens", 2).await.unwrap();
    assert_eq!(paths(&found.hits), ["hours.md"]);
    let notice = found.notice.unwrap();
    assert!(notice.contains("BM25 only"), "{notice}");
    assert!(notice.contains("embed"), "names the model: {notice}");
    let error = vector.search("shop opens", 2).await.unwrap_err();
    assert!(error.contains("embeddings model `embed`"), "{error}");
}

#[tokio::test]
async fn pgvector_keeps_the_vectors_when_the_store_is_postgres() {
    let Ok(url) = std::env::var("CROSSBAR_TEST_POSTGRES_URL") else {
        eprintln!("CROSSBAR_TEST_POSTGRES_URL not set: skipping the pgvector run");
        return;
    };
    let store = Arc::new(SqlStore::open(&url).await.unwrap());
    let vectors = Arc::clone(&store) as Arc<dyn VectorStore>;
    if let Err(e) = vectors.prepare_vectors(1536).await {
        assert!(
            std::env::var_os("CROSSBAR_REQUIRE_POSTGRES").is_none(),
            "CI requires pgvector: {e}"
        );
        eprintln!("no pgvector in this PostgreSQL ({e}): skipping");
        return;
    }
    let h = common::harness(common::CONFIG).await;
    let docs = h.path("docs");
    let index = h.path("index");
    write_docs(&docs);
    let embedding = Some(Embedding {
        embedder: embedder(&h, "embed"),
        store: Some(Arc::clone(&vectors)),
    });
    let done = ingest(&docs, &index, embedding, |_, _| {}).await.unwrap();
    assert_eq!(done.vectors, Some(Backend::Pgvector));
    assert!(
        !index.join("vectors/vectors.bin").exists(),
        "nothing embedded beside the index"
    );
    let model = Arc::new(InProcess::new(Arc::clone(&h.gateway.router))) as Arc<dyn AgentModel>;
    let refused = DocIndex::open(&index, None, Some(Arc::clone(&model)), None)
        .err()
        .unwrap();
    assert!(refused.contains("--store postgres://"), "{refused}");
    let index = DocIndex::open(&index, None, Some(model), Some(&vectors)).unwrap();
    hybrid_finds_what_bm25_misses(&index).await;
}

#[tokio::test]
async fn what_search_docs_spends_on_embeddings_counts_in_the_run_and_survives_resume() {
    let h = common::harness(common::CONFIG).await;
    let docs = h.path("docs");
    write_docs(&docs);
    ingest(&docs, &h.path("index"), embedded(&h, "embed"), |_, _| {})
        .await
        .unwrap();
    let spec = h.spec(
        "name = \"reader\"\ninstructions = \"Search, then answer.\"\n[models]\ndefault = \"smart\"\n\
         [retrieval]\nindex = \"index\"\n",
    );
    let (tools, _) = crossbar_agent::tools_for(&spec, &h.tool_context())
        .await
        .unwrap();
    let (mut agent, events) = h.agent(spec);
    agent.tools = Arc::new(tools);
    let task = "How long do refunds take?\nsim-step 1: search_docs {\"query\": \"refunding\"}";
    let outcome = agent.run(task).await.unwrap();
    assert_eq!(outcome.status, crossbar_agent::RunStatus::Completed);
    let entries: Vec<Entry> = common::entries(&events);
    let tool_cost: u64 = entries
        .iter()
        .filter_map(|e| match e {
            Entry::ToolResult { cost_pusd, .. } => Some(*cost_pusd),
            _ => None,
        })
        .sum();
    let model_cost: u64 = entries
        .iter()
        .filter_map(|e| match e {
            Entry::ModelCall { cost_pusd, .. } => Some(*cost_pusd),
            _ => None,
        })
        .sum();
    // One query of a few tokens at $0.02 per million (20,000 picodollars a token): tiny, but
    // counted to the picodollar.
    assert!(
        tool_cost > 0 && tool_cost.is_multiple_of(20_000) && tool_cost < 1_000_000,
        "{tool_cost}"
    );
    assert_eq!(outcome.totals.cost_pusd, model_cost + tool_cost);
    let run = h.store.run(&outcome.run_id).await.unwrap().unwrap();
    assert_eq!(
        run.totals.cost_pusd, outcome.totals.cost_pusd,
        "the store's totals include the tool's spend"
    );
    // A resume rebuilds its totals from the journal: the tool's spend is still there.
    let copy = h.copy_run_until(&outcome.run_id, "tool_result").await;
    let resumed = agent.resume(&copy).await.unwrap();
    assert_eq!(resumed.answer, outcome.answer);
    assert_eq!(resumed.totals.cost_pusd, outcome.totals.cost_pusd);
}
