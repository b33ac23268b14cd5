//! Contract tests: each backend's requests against its documented REST shapes, and its reading
//! of real (Chroma) or documented (Qdrant, Milvus) answers from `testdata/stores/`.

use super::*;
use serde_json::{json, Value};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/testdata/stores/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn body(call: &StoreCall) -> Value {
    serde_json::from_slice(&call.body).unwrap_or_else(|e| panic!("{e}: {:?}", call.body))
}

const DOC: &str = r#"{"model":"m","text":"Paris.","in":5,"out":2,"at":1}"#;

fn record() -> Record<'static> {
    Record {
        id: "8f2c6a1e3b4d4c5e9f60718293a4b5c6d7e8f90112233445566778899aabbccd",
        vector: &[0.6, 0.8, 0.0],
        partition: "p1",
        expires: 4_000_000_000,
        document: DOC,
    }
}

#[test]
fn chroma_gets_or_creates_a_cosine_collection_and_uses_its_id() {
    let c = Chroma::new("default_tenant", "default_database", "aigw_semantic_cache");
    let call = c.ensure(384);
    assert_eq!(call.method, "POST");
    assert_eq!(
        call.path,
        "/api/v2/tenants/default_tenant/databases/default_database/collections"
    );
    assert_eq!(
        body(&call),
        json!({"name": "aigw_semantic_cache", "get_or_create": true,
            "configuration": {"hnsw": {"space": "cosine"}}})
    );
    let id = c
        .ensured(200, &fixture("chroma-create.response.json"))
        .unwrap();
    assert_eq!(id.len(), 36);
    assert!(c.ensured(500, b"{}").is_err());
    assert!(
        c.ensured(200, br#"{"id":"../x"}"#).is_err(),
        "ids go into paths"
    );
}

#[test]
fn chroma_queries_top_one_in_the_partition_unexpired_and_reads_distance_as_similarity() {
    let c = Chroma::new("t", "d", "col");
    let call = c.query("abc-1", &[0.5, -0.25], "p1", 1_800_000_000);
    assert_eq!(
        call.path,
        "/api/v2/tenants/t/databases/d/collections/abc-1/query"
    );
    assert_eq!(
        body(&call),
        json!({"query_embeddings": [[0.5, -0.25]], "n_results": 1,
            "where": {"$and": [{"partition": "p1"}, {"expires": {"$gt": 1_800_000_000u64}}]},
            "include": ["documents", "distances"]})
    );
    let found = c
        .found(200, &fixture("chroma-query-hit.response.json"))
        .unwrap()
        .unwrap();
    assert!(
        (found.similarity - 0.96).abs() < 1e-4,
        "{}",
        found.similarity
    );
    assert_eq!(found.document, DOC);
    assert_eq!(
        c.found(200, &fixture("chroma-query-empty.response.json"))
            .unwrap(),
        None
    );
    let err = c
        .found(400, &fixture("chroma-query-dimension-error.response.json"))
        .unwrap_err();
    assert!(err.contains("dimension"), "{err}");
    assert!(c.found(200, b"not json").is_err());
}

#[test]
fn chroma_upserts_vector_document_and_metadata() {
    let c = Chroma::new("t", "d", "col");
    let call = c.upsert("abc-1", &record());
    assert_eq!(
        call.path,
        "/api/v2/tenants/t/databases/d/collections/abc-1/upsert"
    );
    let v = body(&call);
    assert_eq!(v["ids"], json!([record().id]));
    assert_eq!(v["embeddings"].to_string(), "[[0.6,0.8,0]]");
    assert_eq!(v["documents"], json!([DOC]));
    assert_eq!(
        v["metadatas"],
        json!([{"partition": "p1", "expires": 4_000_000_000u64}])
    );
    assert!(c
        .upserted(200, &fixture("chroma-upsert.response.json"))
        .is_ok());
    assert!(c.upserted(422, b"{}").is_err());
}

#[test]
fn qdrant_creates_a_cosine_collection_and_takes_409_as_existing() {
    let q = Qdrant::new("aigw_semantic_cache");
    let call = q.ensure(384);
    assert_eq!(
        (call.method, call.path.as_str()),
        ("PUT", "/collections/aigw_semantic_cache")
    );
    assert_eq!(
        body(&call),
        json!({"vectors": {"size": 384, "distance": "Cosine"}})
    );
    assert!(q
        .ensured(200, &fixture("qdrant-create.response.json"))
        .is_ok());
    let exists = fixture("qdrant-create-exists.response.json");
    assert!(q.ensured(409, &exists).is_ok());
    assert!(q.ensured(400, &exists).is_ok(), "before Qdrant 1.8");
    assert!(q
        .ensured(400, b"{\"status\":{\"error\":\"bad size\"}}")
        .is_err());
}

#[test]
fn qdrant_searches_with_a_payload_filter_and_reads_the_score() {
    let q = Qdrant::new("c");
    let call = q.query("c", &[1.0, 0.0], "p1", 77);
    assert_eq!(
        (call.method, call.path.as_str()),
        ("POST", "/collections/c/points/search")
    );
    assert_eq!(
        body(&call),
        json!({"vector": [1, 0], "limit": 1, "with_payload": ["answer"],
            "filter": {"must": [{"key": "partition", "match": {"value": "p1"}},
                                {"key": "expires", "range": {"gt": 77}}]}})
    );
    let f = q
        .found(200, &fixture("qdrant-search-hit.response.json"))
        .unwrap()
        .unwrap();
    assert!((f.similarity - 0.9312).abs() < 1e-6);
    assert_eq!(f.document, DOC);
    assert_eq!(
        q.found(200, &fixture("qdrant-search-empty.response.json"))
            .unwrap(),
        None
    );
    assert!(q.found(404, b"{}").is_err());
}

#[test]
fn qdrant_upserts_points_with_uuid_ids_and_waits() {
    let q = Qdrant::new("c");
    let call = q.upsert("c", &record());
    assert_eq!(
        (call.method, call.path.as_str()),
        ("PUT", "/collections/c/points?wait=true")
    );
    let v = body(&call);
    assert_eq!(v["points"][0]["id"], "8f2c6a1e-3b4d-4c5e-9f60-718293a4b5c6");
    assert_eq!(
        v["points"][0]["payload"],
        json!({"partition": "p1", "expires": 4_000_000_000u64, "answer": DOC})
    );
    assert!(q
        .upserted(200, &fixture("qdrant-upsert.response.json"))
        .is_ok());
    assert_eq!(qdrant::uuid("ab"), "ab000000-0000-0000-0000-000000000000");
}

#[test]
fn milvus_quick_setup_search_filter_and_code_errors() {
    let m = Milvus::new("default_database", "aigw_semantic_cache");
    let call = m.ensure(384);
    assert_eq!(call.path, "/v2/vectordb/collections/create");
    let v = body(&call);
    assert_eq!(
        (v["dbName"].as_str(), v["dimension"].as_u64()),
        (Some("default"), Some(384))
    );
    assert_eq!(
        (v["metricType"].as_str(), v["idType"].as_str()),
        (Some("COSINE"), Some("VarChar"))
    );
    assert!(m
        .ensured(200, &fixture("milvus-create.response.json"))
        .is_ok());
    let err = m
        .ensured(200, &fixture("milvus-error.response.json"))
        .unwrap_err();
    assert!(err.starts_with("code 100"), "{err}");

    let call = m.query("aigw_semantic_cache", &[0.5], "p1", 9);
    assert_eq!(call.path, "/v2/vectordb/entities/search");
    assert_eq!(
        body(&call),
        json!({"dbName": "default", "collectionName": "aigw_semantic_cache", "data": [[0.5]],
            "annsField": "vector", "filter": "cache_partition == \"p1\" and expires > 9",
            "limit": 1, "outputFields": ["answer"]})
    );
    let f = m
        .found(200, &fixture("milvus-search-hit.response.json"))
        .unwrap()
        .unwrap();
    assert!((f.similarity - 0.9312).abs() < 1e-6);
    assert_eq!(f.document, DOC);
    assert_eq!(
        m.found(200, &fixture("milvus-search-empty.response.json"))
            .unwrap(),
        None
    );
    assert!(m
        .found(200, &fixture("milvus-error.response.json"))
        .is_err());

    let call = m.upsert("aigw_semantic_cache", &record());
    assert_eq!(call.path, "/v2/vectordb/entities/upsert");
    let v = body(&call);
    assert_eq!(v["data"][0]["id"], record().id);
    assert_eq!(v["data"][0]["cache_partition"], "p1");
    assert_eq!(v["data"][0]["answer"], DOC);
    assert!(m
        .upserted(200, &fixture("milvus-upsert.response.json"))
        .is_ok());
}

#[test]
fn vectors_with_non_finite_values_still_make_json() {
    let mut s = String::new();
    push_vector(&mut s, &[f32::NAN, 1.5, f32::INFINITY]);
    assert_eq!(s, "[0,1.5,0]");
}

#[test]
fn elasticsearch_creates_a_cosine_dense_vector_index_and_reads_the_score_as_similarity() {
    let es = Search::new(Flavor::Elasticsearch, "aigw_semantic_cache");
    let call = es.ensure(384);
    assert_eq!(
        (call.method, call.path.as_str()),
        ("PUT", "/aigw_semantic_cache")
    );
    let v = body(&call);
    assert_eq!(
        v["mappings"]["properties"]["vector"],
        json!({"type": "dense_vector", "dims": 384, "index": true, "similarity": "cosine"})
    );
    assert_eq!(v["mappings"]["properties"]["partition"]["type"], "keyword");
    assert!(es
        .ensured(200, &fixture("elasticsearch-create.response.json"))
        .is_ok());
    assert!(es
        .ensured(400, &fixture("elasticsearch-create-exists.response.json"))
        .is_ok());
    assert!(es
        .ensured(400, br#"{"error":{"type":"mapper_parsing_exception"}}"#)
        .is_err());

    let call = es.query("aigw_semantic_cache", &[1.0, 0.5], "p1", 9);
    assert_eq!(call.path, "/aigw_semantic_cache/_search");
    assert_eq!(
        body(&call),
        json!({"size": 1, "_source": ["answer"], "knn": {"field": "vector", "query_vector": [1, 0.5],
            "k": 1, "num_candidates": 20,
            "filter": [{"term": {"partition": "p1"}}, {"range": {"expires": {"gt": 9}}}]}})
    );
    let f = es
        .found(200, &fixture("elasticsearch-search-hit.response.json"))
        .unwrap()
        .unwrap();
    assert!((f.similarity - 0.9312).abs() < 1e-4, "{}", f.similarity);
    assert_eq!(f.document, DOC);
    assert_eq!(
        es.found(200, &fixture("elasticsearch-search-empty.response.json"))
            .unwrap(),
        None
    );
    assert!(es.found(503, b"{}").is_err());

    let call = es.upsert("aigw_semantic_cache", &record());
    assert_eq!(call.method, "PUT");
    assert_eq!(
        call.path,
        format!("/aigw_semantic_cache/_doc/{}?refresh=true", record().id)
    );
    let v = body(&call);
    assert_eq!(
        (v["partition"].as_str(), v["answer"].as_str()),
        (Some("p1"), Some(DOC))
    );
    assert!(es
        .upserted(201, &fixture("elasticsearch-index.response.json"))
        .is_ok());
}

#[test]
fn opensearch_uses_a_knn_index_and_the_knn_query_with_a_filter() {
    let os = Search::new(Flavor::OpenSearch, "aigw_semantic_cache");
    let v = body(&os.ensure(8));
    assert_eq!(v["settings"]["index"]["knn"], true);
    assert_eq!(
        v["mappings"]["properties"]["vector"],
        json!({"type": "knn_vector", "dimension": 8,
            "method": {"name": "hnsw", "engine": "lucene", "space_type": "cosinesimil"}})
    );
    let v = body(&os.query("aigw_semantic_cache", &[1.0], "p1", 9));
    assert_eq!(
        v["query"]["knn"]["vector"],
        json!({"vector": [1], "k": 1, "filter": {"bool": {"filter": [
            {"term": {"partition": "p1"}}, {"range": {"expires": {"gt": 9}}}]}}})
    );
    let f = os
        .found(200, &fixture("elasticsearch-search-hit.response.json"))
        .unwrap()
        .unwrap();
    assert!((f.similarity - 0.9312).abs() < 1e-4);
}
