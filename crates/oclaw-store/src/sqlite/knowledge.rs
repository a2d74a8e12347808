//! [`Knowledge`] on SQLite: collections, documents and chunks in tables, the analysed terms in
//! an FTS5 index (ranked by BM25), vectors as little-endian `f32` blobs.

use async_trait::async_trait;
use chrono::Utc;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};
use serde_json::Value;

use super::connection::{map_err, SqliteStore, Tx};
use super::rows::{from_ms, ms, parse_json, to_json};
use crate::knowledge::{
    embedder_mismatch, fts5_collection_token, fts5_query, keep_rare_terms, vector_bytes,
    vector_from_bytes, ChunkRecord, ChunkScore, CollectionInfo, DocumentInfo, DocumentWrite,
    MetadataFilter, PutOutcome, Revision, StoredVectors, VectorsBuilder, PRUNE_FROM,
};
use crate::{Knowledge, StoreError, StoreResult};

const COLLECTION_COLUMNS: &str = "k.name, k.tenant, \
    (SELECT count(*) FROM kb_documents d WHERE d.kb_id = k.id), \
    (SELECT count(*) FROM kb_chunks c WHERE c.kb_id = k.id), \
    k.embedder, k.dimensions, k.revision, k.created_at";

fn collection_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CollectionInfo> {
    Ok(CollectionInfo {
        name: r.get(0)?,
        tenant: r.get(1)?,
        documents: r.get::<_, i64>(2)? as u64,
        chunks: r.get::<_, i64>(3)? as u64,
        embedder: r.get(4)?,
        dimensions: r.get::<_, Option<i64>>(5)?.map(|d| d as u32),
        revision: r.get(6)?,
        created_at: from_ms(r.get(7)?),
    })
}

/// A collection's id, embedder and dimensions.
type CollectionKey = (i64, Option<String>, Option<i64>);

/// The collection's id, embedder and dimensions.
fn collection_id(c: &Connection, tenant: &str, name: &str) -> StoreResult<Option<CollectionKey>> {
    c.prepare_cached(
        "SELECT id, embedder, dimensions FROM kb_collections WHERE tenant = ?1 AND name = ?2",
    )
    .and_then(|mut s| {
        s.query_row(params![tenant, name], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()
    })
    .map_err(map_err)
}

fn require_collection(c: &Connection, tenant: &str, name: &str) -> StoreResult<i64> {
    collection_id(c, tenant, name)?
        .map(|(id, ..)| id)
        .ok_or_else(|| StoreError::KbNotFound(name.to_string()))
}

/// [`keep_rare_terms`] with FTS5's own counts (`kb_fts_vocab`: chunks holding each term, over
/// every collection; the collection's own size from its token's count).
fn prune_common(c: &Connection, kb: i64, terms: &[String]) -> StoreResult<Vec<String>> {
    if terms.len() < 2 {
        return Ok(terms.to_vec());
    }
    let count = |term: &str| -> StoreResult<i64> {
        c.prepare_cached("SELECT doc FROM kb_fts_vocab WHERE term = ?1")
            .and_then(|mut s| s.query_row([term], |r| r.get(0)).optional())
            .map(|d| d.unwrap_or(0))
            .map_err(map_err)
    };
    let chunks = count(&fts5_collection_token(kb))?;
    if chunks < PRUNE_FROM {
        return Ok(terms.to_vec());
    }
    let mut counted = Vec::with_capacity(terms.len());
    for t in terms {
        counted.push((count(t)?, t.clone()));
    }
    Ok(keep_rare_terms(chunks, counted))
}

/// A metadata value as SQLite's `json_extract` answers it.
fn sql_value(v: &Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(*b as i64),
        Value::Number(n) => n
            .as_i64()
            .map(SqlValue::Integer)
            .unwrap_or_else(|| SqlValue::Real(n.as_f64().unwrap_or_default())),
        Value::String(s) => SqlValue::Text(s.clone()),
        other => SqlValue::Text(other.to_string()),
    }
}

/// `AND json_extract(d.metadata, ?) = ?` per filter key, with its parameters.
fn filter_sql(filter: &MetadataFilter, params: &mut Vec<SqlValue>) -> String {
    let mut sql = String::new();
    for (k, v) in filter {
        params.push(SqlValue::Text(format!("$.\"{k}\"")));
        let path = params.len();
        if v.is_null() {
            sql.push_str(&format!(" AND json_type(d.metadata, ?{path}) = 'null'"));
        } else {
            params.push(sql_value(v));
            sql.push_str(&format!(
                " AND json_extract(d.metadata, ?{path}) = ?{}",
                params.len()
            ));
        }
    }
    sql
}

fn delete_chunks(tx: &Connection, kb: i64, document: &str) -> StoreResult<()> {
    tx.prepare_cached(
        "DELETE FROM kb_fts WHERE rowid IN (SELECT id FROM kb_chunks WHERE kb_id = ?1 AND document = ?2)",
    )
    .and_then(|mut s| s.execute(params![kb, document]))
    .map_err(map_err)?;
    tx.prepare_cached("DELETE FROM kb_chunks WHERE kb_id = ?1 AND document = ?2")
        .and_then(|mut s| s.execute(params![kb, document]))
        .map_err(map_err)?;
    Ok(())
}

fn bump_revision(tx: &Connection, kb: i64) -> StoreResult<()> {
    tx.prepare_cached("UPDATE kb_collections SET revision = revision + 1 WHERE id = ?1")
        .and_then(|mut s| s.execute([kb]))
        .map_err(map_err)?;
    Ok(())
}

fn put_document(c: &Connection, w: DocumentWrite) -> StoreResult<PutOutcome> {
    let tx = Tx::begin(c)?;
    let (kb, embedder, dims) = collection_id(&tx, &w.tenant, &w.collection)?
        .ok_or_else(|| StoreError::KbNotFound(w.collection.clone()))?;
    let now = ms(Utc::now());
    let old_hash: Option<String> = tx
        .prepare_cached("SELECT hash FROM kb_documents WHERE kb_id = ?1 AND id = ?2")
        .and_then(|mut s| s.query_row(params![kb, w.id], |r| r.get(0)).optional())
        .map_err(map_err)?;
    let metadata = to_json(&w.metadata);
    if old_hash.as_deref() == Some(w.hash.as_str()) {
        tx.prepare_cached(
            "UPDATE kb_documents SET title = ?3, source = ?4, metadata = ?5, updated_at = ?6 WHERE kb_id = ?1 AND id = ?2",
        )
        .and_then(|mut s| s.execute(params![kb, w.id, w.title, w.source, metadata, now]))
        .map_err(map_err)?;
        tx.commit()?;
        return Ok(PutOutcome::Unchanged);
    }
    if let Some(e) = &w.embedder {
        match &embedder {
            Some(have) if *have != e.name || dims != Some(e.dimensions as i64) => {
                return Err(embedder_mismatch(&w.collection, have, dims, e));
            }
            Some(_) => {}
            None => {
                tx.prepare_cached(
                    "UPDATE kb_collections SET embedder = ?2, dimensions = ?3 WHERE id = ?1",
                )
                .and_then(|mut s| s.execute(params![kb, e.name, e.dimensions]))
                .map_err(map_err)?;
            }
        }
    }
    delete_chunks(&tx, kb, &w.id)?;
    let token = fts5_collection_token(kb);
    {
        let mut chunk = tx
            .prepare_cached(
                "INSERT INTO kb_chunks (kb_id, document, ordinal, text, vector) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(map_err)?;
        let mut fts = tx
            .prepare_cached("INSERT INTO kb_fts (rowid, kb, terms) VALUES (?1, ?2, ?3)")
            .map_err(map_err)?;
        for (i, ch) in w.chunks.iter().enumerate() {
            let vector = ch.vector.as_deref().map(vector_bytes);
            chunk
                .execute(params![kb, w.id, i as i64, ch.text, vector])
                .map_err(map_err)?;
            let id = tx.last_insert_rowid();
            fts.execute(params![id, token, ch.terms.join(" ")])
                .map_err(map_err)?;
        }
    }
    tx.prepare_cached(
        "INSERT OR REPLACE INTO kb_documents (kb_id, id, title, source, metadata, hash, chunks, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .and_then(|mut s| {
        s.execute(params![
            kb,
            w.id,
            w.title,
            w.source,
            metadata,
            w.hash,
            w.chunks.len() as i64,
            now
        ])
    })
    .map_err(map_err)?;
    bump_revision(&tx, kb)?;
    tx.commit()?;
    Ok(if old_hash.is_some() {
        PutOutcome::Replaced
    } else {
        PutOutcome::Created
    })
}

#[async_trait]
impl Knowledge for SqliteStore {
    async fn kb_create(&self, tenant: &str, name: &str) -> StoreResult<CollectionInfo> {
        let (tenant, name) = (tenant.to_string(), name.to_string());
        self.write(move |c, _| {
            let tx = Tx::begin(c)?;
            if collection_id(&tx, &tenant, &name)?.is_some() {
                return Err(StoreError::Duplicate(format!(
                    "knowledge collection `{name}` exists"
                )));
            }
            tx.prepare_cached(
                "INSERT INTO kb_collections (tenant, name, created_at) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| s.execute(params![tenant, name, ms(Utc::now())]))
            .map_err(map_err)?;
            let info = tx
                .prepare_cached(&format!(
                    "SELECT {COLLECTION_COLUMNS} FROM kb_collections k WHERE k.id = ?1"
                ))
                .and_then(|mut s| s.query_row([tx.last_insert_rowid()], collection_from_row))
                .map_err(map_err)?;
            tx.commit()?;
            Ok(info)
        })
        .await
    }

    async fn kb_get(&self, tenant: &str, name: &str) -> StoreResult<Option<CollectionInfo>> {
        let (tenant, name) = (tenant.to_string(), name.to_string());
        self.read(move |c, _| {
            c.prepare_cached(&format!(
                "SELECT {COLLECTION_COLUMNS} FROM kb_collections k WHERE k.tenant = ?1 AND k.name = ?2"
            ))
            .and_then(|mut s| s.query_row(params![tenant, name], collection_from_row).optional())
            .map_err(map_err)
        })
        .await
    }

    async fn kb_revision(&self, tenant: &str, name: &str) -> StoreResult<Option<Revision>> {
        let (tenant, name) = (tenant.to_string(), name.to_string());
        self.read(move |c, _| {
            c.prepare_cached(
                "SELECT revision, embedder, dimensions FROM kb_collections WHERE tenant = ?1 AND name = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![tenant, name], |r| {
                    Ok(Revision {
                        revision: r.get(0)?,
                        embedder: r.get(1)?,
                        dimensions: r.get::<_, Option<i64>>(2)?.map(|d| d as u32),
                    })
                })
                .optional()
            })
            .map_err(map_err)
        })
        .await
    }

    async fn kb_list(&self, tenant: &str) -> StoreResult<Vec<CollectionInfo>> {
        let tenant = tenant.to_string();
        self.read(move |c, _| {
            let mut s = c
                .prepare_cached(&format!(
                    "SELECT {COLLECTION_COLUMNS} FROM kb_collections k WHERE k.tenant = ?1 ORDER BY k.name"
                ))
                .map_err(map_err)?;
            let rows = s
                .query_map([tenant], collection_from_row)
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(map_err)?;
            Ok(rows)
        })
        .await
    }

    async fn kb_drop(&self, tenant: &str, name: &str) -> StoreResult<bool> {
        let (tenant, name) = (tenant.to_string(), name.to_string());
        self.write(move |c, _| {
            let tx = Tx::begin(c)?;
            let Some((kb, ..)) = collection_id(&tx, &tenant, &name)? else {
                return Ok(false);
            };
            tx.prepare_cached(
                "DELETE FROM kb_fts WHERE rowid IN (SELECT id FROM kb_chunks WHERE kb_id = ?1)",
            )
            .and_then(|mut s| s.execute([kb]))
            .map_err(map_err)?;
            for sql in [
                "DELETE FROM kb_chunks WHERE kb_id = ?1",
                "DELETE FROM kb_documents WHERE kb_id = ?1",
                "DELETE FROM kb_collections WHERE id = ?1",
            ] {
                tx.prepare_cached(sql)
                    .and_then(|mut s| s.execute([kb]))
                    .map_err(map_err)?;
            }
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn kb_document_hash(
        &self,
        tenant: &str,
        collection: &str,
        id: &str,
    ) -> StoreResult<Option<String>> {
        let (tenant, collection, id) = (tenant.to_string(), collection.to_string(), id.to_string());
        self.read(move |c, _| {
            let kb = require_collection(c, &tenant, &collection)?;
            c.prepare_cached("SELECT hash FROM kb_documents WHERE kb_id = ?1 AND id = ?2")
                .and_then(|mut s| s.query_row(params![kb, id], |r| r.get(0)).optional())
                .map_err(map_err)
        })
        .await
    }

    async fn kb_put_document(&self, write: DocumentWrite) -> StoreResult<PutOutcome> {
        self.write(move |c, _| put_document(c, write)).await
    }

    async fn kb_remove_document(
        &self,
        tenant: &str,
        collection: &str,
        id: &str,
    ) -> StoreResult<bool> {
        let (tenant, collection, id) = (tenant.to_string(), collection.to_string(), id.to_string());
        self.write(move |c, _| {
            let tx = Tx::begin(c)?;
            let kb = require_collection(&tx, &tenant, &collection)?;
            delete_chunks(&tx, kb, &id)?;
            let n = tx
                .prepare_cached("DELETE FROM kb_documents WHERE kb_id = ?1 AND id = ?2")
                .and_then(|mut s| s.execute(params![kb, id]))
                .map_err(map_err)?;
            if n > 0 {
                bump_revision(&tx, kb)?;
            }
            tx.commit()?;
            Ok(n > 0)
        })
        .await
    }

    async fn kb_documents(
        &self,
        tenant: &str,
        collection: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<DocumentInfo>> {
        let (tenant, collection) = (tenant.to_string(), collection.to_string());
        let after = after.unwrap_or_default().to_string();
        self.read(move |c, _| {
            let kb = require_collection(c, &tenant, &collection)?;
            let mut s = c
                .prepare_cached(
                    "SELECT id, title, source, metadata, hash, chunks, updated_at FROM kb_documents \
                     WHERE kb_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
                )
                .map_err(map_err)?;
            let rows = s
                .query_map(params![kb, after, limit as i64], |r| {
                    Ok(DocumentInfo {
                        id: r.get(0)?,
                        title: r.get(1)?,
                        source: r.get(2)?,
                        metadata: parse_json(&r.get::<_, String>(3)?),
                        hash: r.get(4)?,
                        chunks: r.get::<_, i64>(5)? as u64,
                        updated_at: from_ms(r.get(6)?),
                    })
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(map_err)?;
            Ok(rows)
        })
        .await
    }

    async fn kb_text_search(
        &self,
        tenant: &str,
        collection: &str,
        terms: &[String],
        filter: &MetadataFilter,
        limit: usize,
    ) -> StoreResult<Vec<ChunkScore>> {
        if terms.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let (tenant, collection) = (tenant.to_string(), collection.to_string());
        let (terms, filter) = (terms.to_vec(), filter.clone());
        self.read(move |c, _| {
            let kb = require_collection(c, &tenant, &collection)?;
            let terms = prune_common(c, kb, &terms)?;
            let mut params = vec![
                SqlValue::Text(fts5_query(kb, &terms)),
                SqlValue::Integer(limit as i64),
            ];
            let sql = if filter.is_empty() {
                "SELECT rowid, bm25(kb_fts, 0.0, 1.0) AS s FROM kb_fts WHERE kb_fts MATCH ?1 \
                 ORDER BY s LIMIT ?2"
                    .to_string()
            } else {
                let conditions = filter_sql(&filter, &mut params);
                format!(
                    "SELECT f.rowid, bm25(kb_fts, 0.0, 1.0) AS s FROM kb_fts f \
                     JOIN kb_chunks c ON c.id = f.rowid \
                     JOIN kb_documents d ON d.kb_id = c.kb_id AND d.id = c.document \
                     WHERE kb_fts MATCH ?1{conditions} ORDER BY s LIMIT ?2"
                )
            };
            let mut s = c.prepare_cached(&sql).map_err(map_err)?;
            let rows = s
                .query_map(params_from_iter(params), |r| {
                    Ok(ChunkScore {
                        chunk: r.get(0)?,
                        // bm25() is lower for better matches.
                        score: -r.get::<_, f64>(1)?,
                    })
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(map_err)?;
            Ok(rows)
        })
        .await
    }

    async fn kb_vectors(&self, tenant: &str, collection: &str) -> StoreResult<StoredVectors> {
        let (tenant, collection) = (tenant.to_string(), collection.to_string());
        self.read(move |c, _| {
            let (kb, revision, dims): (i64, i64, Option<i64>) = c
                .prepare_cached(
                    "SELECT id, revision, dimensions FROM kb_collections WHERE tenant = ?1 AND name = ?2",
                )
                .and_then(|mut s| {
                    s.query_row(params![tenant, collection], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                    .optional()
                })
                .map_err(map_err)?
                .ok_or_else(|| StoreError::KbNotFound(collection.clone()))?;
            let Some(dims) = dims else {
                return Ok(StoredVectors {
                    revision,
                    ..Default::default()
                });
            };
            let mut s = c
                .prepare_cached(
                    "SELECT c.id, c.document, c.vector, d.metadata FROM kb_chunks c \
                     JOIN kb_documents d ON d.kb_id = c.kb_id AND d.id = c.document \
                     WHERE c.kb_id = ?1 AND c.vector IS NOT NULL ORDER BY c.document, c.ordinal",
                )
                .map_err(map_err)?;
            // Row by row into one buffer: no copy of every blob at once.
            let mut builder = VectorsBuilder::new(revision, dims as usize);
            let mut rows = s.query([kb]).map_err(map_err)?;
            while let Some(r) = rows.next().map_err(map_err)? {
                let doc = r.get_ref(1).and_then(|v| v.as_str().map_err(Into::into));
                let bytes = r.get_ref(2).and_then(|v| v.as_blob().map_err(Into::into));
                let (Ok(doc), Ok(bytes)) = (doc, bytes) else {
                    continue;
                };
                let id: i64 = r.get(0).map_err(map_err)?;
                builder.push(id, doc, bytes, || {
                    r.get_ref(3)
                        .ok()
                        .and_then(|v| v.as_str().ok())
                        .map(parse_json)
                        .unwrap_or(Value::Null)
                });
            }
            Ok(builder.finish())
        })
        .await
    }

    async fn kb_chunk_vectors(&self, ids: &[i64]) -> StoreResult<Vec<(i64, Vec<f32>)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = ids.to_vec();
        self.read(move |c, _| {
            let marks = vec!["?"; ids.len()].join(",");
            let mut s = c
                .prepare(&format!(
                    "SELECT id, vector FROM kb_chunks WHERE id IN ({marks}) AND vector IS NOT NULL"
                ))
                .map_err(map_err)?;
            let rows = s
                .query_map(params_from_iter(ids), |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        vector_from_bytes(&r.get::<_, Vec<u8>>(1)?),
                    ))
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(map_err)?;
            Ok(rows)
        })
        .await
    }

    async fn kb_chunks(&self, ids: &[i64]) -> StoreResult<Vec<ChunkRecord>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = ids.to_vec();
        self.read(move |c, _| {
            let marks = vec!["?"; ids.len()].join(",");
            let mut s = c
                .prepare(&format!(
                    "SELECT c.id, c.document, c.ordinal, d.title, d.source, c.text, d.metadata \
                     FROM kb_chunks c JOIN kb_documents d ON d.kb_id = c.kb_id AND d.id = c.document \
                     WHERE c.id IN ({marks})"
                ))
                .map_err(map_err)?;
            let rows = s
                .query_map(params_from_iter(ids), |r| {
                    Ok(ChunkRecord {
                        chunk: r.get(0)?,
                        document: r.get(1)?,
                        ordinal: r.get::<_, i64>(2)? as u32,
                        title: r.get(3)?,
                        source: r.get(4)?,
                        text: r.get(5)?,
                        metadata: parse_json(&r.get::<_, String>(6)?),
                    })
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(map_err)?;
            Ok(rows)
        })
        .await
    }
}
