//! [`Knowledge`] on PostgreSQL: the analysed terms as a `tsvector` (built from our terms, not by
//! PostgreSQL's parser, so Chinese bigrams match) under a GIN index and ranked by `ts_rank`;
//! metadata as `jsonb` (filters are one `@>`); vectors as `bytea`.

use async_trait::async_trait;
use chrono::Utc;
use deadpool_postgres::GenericClient;
use serde_json::Value;

use super::{pg_err, pool_err, PgStore};
use crate::codec::{from_ms, ms};
use crate::knowledge::{
    embedder_mismatch, keep_rare_terms, tsquery_text, tsvector_text, vector_bytes,
    vector_from_bytes, ChunkRecord, ChunkScore, CollectionInfo, DocumentInfo, DocumentWrite,
    MetadataFilter, PutOutcome, Revision, StoredVectors, VectorsBuilder, PRUNE_FROM,
};
use crate::{Knowledge, StoreError, StoreResult};

const COLLECTION_COLUMNS: &str = "k.name, k.tenant, \
    (SELECT count(*) FROM kb_documents d WHERE d.kb_id = k.id), \
    (SELECT count(*) FROM kb_chunks c WHERE c.kb_id = k.id), \
    k.embedder, k.dimensions, k.revision, k.created_at";

fn collection_from_row(r: &tokio_postgres::Row) -> CollectionInfo {
    CollectionInfo {
        name: r.get(0),
        tenant: r.get(1),
        documents: r.get::<_, i64>(2) as u64,
        chunks: r.get::<_, i64>(3) as u64,
        embedder: r.get(4),
        dimensions: r.get::<_, Option<i32>>(5).map(|d| d as u32),
        revision: r.get(6),
        created_at: from_ms(r.get(7)),
    }
}

async fn require_collection(c: &impl GenericClient, tenant: &str, name: &str) -> StoreResult<i64> {
    c.query_opt(
        "SELECT id FROM kb_collections WHERE tenant = $1 AND name = $2",
        &[&tenant, &name],
    )
    .await
    .map_err(pg_err)?
    .map(|r| r.get(0))
    .ok_or_else(|| StoreError::KbNotFound(name.to_string()))
}

/// Deletes a document's chunks and takes them out of the term counts.
async fn delete_chunks(
    tx: &deadpool_postgres::Transaction<'_>,
    kb: i64,
    document: &str,
) -> StoreResult<()> {
    tx.execute(
        "WITH gone AS (DELETE FROM kb_chunks WHERE kb_id = $1 AND document = $2 RETURNING terms), \
         counts AS (SELECT u.lexeme AS term, count(*)::int AS n FROM gone, unnest(gone.terms) AS u GROUP BY u.lexeme), \
         counted AS (UPDATE kb_terms t SET chunks = t.chunks - c.n FROM counts c WHERE t.kb_id = $1 AND t.term = c.term RETURNING 1) \
         UPDATE kb_collections SET chunks = chunks - (SELECT count(*) FROM gone) WHERE id = $1",
        &[&kb, &document],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

#[async_trait]
impl Knowledge for PgStore {
    async fn kb_create(&self, tenant: &str, name: &str) -> StoreResult<CollectionInfo> {
        let n = self
            .exec(
                "INSERT INTO kb_collections (tenant, name, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (tenant, name) DO NOTHING",
                &[&tenant, &name, &ms(Utc::now())],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::Duplicate(format!(
                "knowledge collection `{name}` exists"
            )));
        }
        self.kb_get(tenant, name)
            .await?
            .ok_or_else(|| StoreError::KbNotFound(name.to_string()))
    }

    async fn kb_get(&self, tenant: &str, name: &str) -> StoreResult<Option<CollectionInfo>> {
        let rows = self
            .query(
                &format!(
                    "SELECT {COLLECTION_COLUMNS} FROM kb_collections k WHERE k.tenant = $1 AND k.name = $2"
                ),
                &[&tenant, &name],
            )
            .await?;
        Ok(rows.first().map(collection_from_row))
    }

    async fn kb_revision(&self, tenant: &str, name: &str) -> StoreResult<Option<Revision>> {
        let rows = self
            .query(
                "SELECT revision, embedder, dimensions FROM kb_collections WHERE tenant = $1 AND name = $2",
                &[&tenant, &name],
            )
            .await?;
        Ok(rows.first().map(|r| Revision {
            revision: r.get(0),
            embedder: r.get(1),
            dimensions: r.get::<_, Option<i32>>(2).map(|d| d as u32),
        }))
    }

    async fn kb_list(&self, tenant: &str) -> StoreResult<Vec<CollectionInfo>> {
        let rows = self
            .query(
                &format!(
                    "SELECT {COLLECTION_COLUMNS} FROM kb_collections k WHERE k.tenant = $1 ORDER BY k.name"
                ),
                &[&tenant],
            )
            .await?;
        Ok(rows.iter().map(collection_from_row).collect())
    }

    async fn kb_drop(&self, tenant: &str, name: &str) -> StoreResult<bool> {
        // Documents and chunks go with the collection (ON DELETE CASCADE).
        let n = self
            .exec(
                "DELETE FROM kb_collections WHERE tenant = $1 AND name = $2",
                &[&tenant, &name],
            )
            .await?;
        Ok(n > 0)
    }

    async fn kb_document_hash(
        &self,
        tenant: &str,
        collection: &str,
        id: &str,
    ) -> StoreResult<Option<String>> {
        let client = self.inner.pool.get().await.map_err(pool_err)?;
        let kb = require_collection(&client, tenant, collection).await?;
        let row = client
            .query_opt(
                "SELECT hash FROM kb_documents WHERE kb_id = $1 AND id = $2",
                &[&kb, &id],
            )
            .await
            .map_err(pg_err)?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn kb_put_document(&self, w: DocumentWrite) -> StoreResult<PutOutcome> {
        let mut client = self.inner.pool.get().await.map_err(pool_err)?;
        let tx = client.transaction().await.map_err(pg_err)?;
        // The collection's row lock orders writers of one collection (its revision and embedder).
        let row = tx
            .query_opt(
                "SELECT id, embedder, dimensions FROM kb_collections WHERE tenant = $1 AND name = $2 FOR UPDATE",
                &[&w.tenant, &w.collection],
            )
            .await
            .map_err(pg_err)?
            .ok_or_else(|| StoreError::KbNotFound(w.collection.clone()))?;
        let (kb, embedder, dims): (i64, Option<String>, Option<i32>) =
            (row.get(0), row.get(1), row.get(2));
        let now = ms(Utc::now());
        let old_hash: Option<String> = tx
            .query_opt(
                "SELECT hash FROM kb_documents WHERE kb_id = $1 AND id = $2",
                &[&kb, &w.id],
            )
            .await
            .map_err(pg_err)?
            .map(|r| r.get(0));
        let metadata = w.metadata.to_string();
        if old_hash.as_deref() == Some(w.hash.as_str()) {
            tx.execute(
                "UPDATE kb_documents SET title = $3, source = $4, metadata = $5::text::jsonb, updated_at = $6 \
                 WHERE kb_id = $1 AND id = $2",
                &[&kb, &w.id, &w.title, &w.source, &metadata, &now],
            )
            .await
            .map_err(pg_err)?;
            tx.commit().await.map_err(pg_err)?;
            return Ok(PutOutcome::Unchanged);
        }
        if let Some(e) = &w.embedder {
            match &embedder {
                Some(have) if *have != e.name || dims != Some(e.dimensions as i32) => {
                    return Err(embedder_mismatch(
                        &w.collection,
                        have,
                        dims.map(i64::from),
                        e,
                    ));
                }
                Some(_) => {}
                None => {
                    tx.execute(
                        "UPDATE kb_collections SET embedder = $2, dimensions = $3 WHERE id = $1",
                        &[&kb, &e.name, &(e.dimensions as i32)],
                    )
                    .await
                    .map_err(pg_err)?;
                }
            }
        }
        delete_chunks(&tx, kb, &w.id).await?;
        let n = w.chunks.len();
        // Chunks holding each term, for leaving common terms out of searches.
        let mut holding: std::collections::HashMap<&str, i32> = Default::default();
        for ch in &w.chunks {
            let distinct: std::collections::HashSet<&str> =
                ch.terms.iter().map(String::as_str).collect();
            for t in distinct {
                *holding.entry(t).or_default() += 1;
            }
        }
        let (term_list, term_counts): (Vec<&str>, Vec<i32>) = holding.into_iter().unzip();
        tx.execute(
            "INSERT INTO kb_terms (kb_id, term, chunks) SELECT $1, t, n FROM unnest($2::text[], $3::int[]) AS u(t, n) \
             ON CONFLICT (kb_id, term) DO UPDATE SET chunks = kb_terms.chunks + excluded.chunks",
            &[&kb, &term_list, &term_counts],
        )
        .await
        .map_err(pg_err)?;
        tx.execute(
            "UPDATE kb_collections SET chunks = chunks + $2 WHERE id = $1",
            &[&kb, &(n as i64)],
        )
        .await
        .map_err(pg_err)?;
        let mut ordinals = Vec::with_capacity(n);
        let mut texts = Vec::with_capacity(n);
        let mut terms = Vec::with_capacity(n);
        let mut vectors: Vec<Option<Vec<u8>>> = Vec::with_capacity(n);
        for (i, ch) in w.chunks.iter().enumerate() {
            ordinals.push(i as i32);
            texts.push(ch.text.as_str());
            terms.push(tsvector_text(&ch.terms));
            vectors.push(ch.vector.as_deref().map(vector_bytes));
        }
        tx.execute(
            "INSERT INTO kb_chunks (kb_id, document, ordinal, text, terms, vector) \
             SELECT $1, $2, o, t, v::tsvector, b FROM unnest($3::int[], $4::text[], $5::text[], $6::bytea[]) AS u(o, t, v, b)",
            &[&kb, &w.id, &ordinals, &texts, &terms, &vectors],
        )
        .await
        .map_err(pg_err)?;
        tx.execute(
            "INSERT INTO kb_documents (kb_id, id, title, source, metadata, hash, chunks, updated_at) \
             VALUES ($1, $2, $3, $4, $5::text::jsonb, $6, $7, $8) \
             ON CONFLICT (kb_id, id) DO UPDATE SET title = excluded.title, source = excluded.source, \
             metadata = excluded.metadata, hash = excluded.hash, chunks = excluded.chunks, updated_at = excluded.updated_at",
            &[&kb, &w.id, &w.title, &w.source, &metadata, &w.hash, &(n as i32), &now],
        )
        .await
        .map_err(pg_err)?;
        tx.execute(
            "UPDATE kb_collections SET revision = revision + 1 WHERE id = $1",
            &[&kb],
        )
        .await
        .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)?;
        Ok(if old_hash.is_some() {
            PutOutcome::Replaced
        } else {
            PutOutcome::Created
        })
    }

    async fn kb_remove_document(
        &self,
        tenant: &str,
        collection: &str,
        id: &str,
    ) -> StoreResult<bool> {
        let mut client = self.inner.pool.get().await.map_err(pool_err)?;
        let tx = client.transaction().await.map_err(pg_err)?;
        // The collection's row lock orders this with the collection's other writers.
        let kb: i64 = tx
            .query_opt(
                "SELECT id FROM kb_collections WHERE tenant = $1 AND name = $2 FOR UPDATE",
                &[&tenant, &collection],
            )
            .await
            .map_err(pg_err)?
            .map(|r| r.get(0))
            .ok_or_else(|| StoreError::KbNotFound(collection.to_string()))?;
        delete_chunks(&tx, kb, id).await?;
        let n = tx
            .execute(
                "DELETE FROM kb_documents WHERE kb_id = $1 AND id = $2",
                &[&kb, &id],
            )
            .await
            .map_err(pg_err)?;
        if n > 0 {
            tx.execute(
                "UPDATE kb_collections SET revision = revision + 1 WHERE id = $1",
                &[&kb],
            )
            .await
            .map_err(pg_err)?;
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(n > 0)
    }

    async fn kb_documents(
        &self,
        tenant: &str,
        collection: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<DocumentInfo>> {
        let client = self.inner.pool.get().await.map_err(pool_err)?;
        let kb = require_collection(&client, tenant, collection).await?;
        let rows = client
            .query(
                "SELECT id, title, source, metadata::text, hash, chunks, updated_at FROM kb_documents \
                 WHERE kb_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                &[&kb, &after.unwrap_or_default(), &(limit as i64)],
            )
            .await
            .map_err(pg_err)?;
        Ok(rows
            .iter()
            .map(|r| DocumentInfo {
                id: r.get(0),
                title: r.get(1),
                source: r.get(2),
                metadata: crate::codec::parse_json(r.get(3)),
                hash: r.get(4),
                chunks: r.get::<_, i32>(5) as u64,
                updated_at: from_ms(r.get(6)),
            })
            .collect())
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
        let client = self.inner.pool.get().await.map_err(pool_err)?;
        let row = client
            .query_opt(
                "SELECT id, chunks FROM kb_collections WHERE tenant = $1 AND name = $2",
                &[&tenant, &collection],
            )
            .await
            .map_err(pg_err)?
            .ok_or_else(|| StoreError::KbNotFound(collection.to_string()))?;
        let (kb, chunks): (i64, i64) = (row.get(0), row.get(1));
        let terms = if chunks >= PRUNE_FROM && terms.len() > 1 {
            let counts = client
                .query(
                    "SELECT term, chunks FROM kb_terms WHERE kb_id = $1 AND term = ANY($2)",
                    &[&kb, &terms],
                )
                .await
                .map_err(pg_err)?;
            let counted = terms
                .iter()
                .map(|t| {
                    let n = counts
                        .iter()
                        .find(|r| r.get::<_, &str>(0) == t)
                        .map(|r| r.get::<_, i32>(1) as i64)
                        .unwrap_or(0);
                    (n, t.clone())
                })
                .collect();
            keep_rare_terms(chunks, counted)
        } else {
            terms.to_vec()
        };
        let query = tsquery_text(&terms);
        let limit = limit as i64;
        let rows = if filter.is_empty() {
            let stmt = client
                .prepare_cached(
                    "SELECT c.id, ts_rank(c.terms, q, 1) AS s FROM kb_chunks c, CAST($2::text AS tsquery) q \
                     WHERE c.kb_id = $1 AND c.terms @@ q ORDER BY s DESC, c.id LIMIT $3",
                )
                .await
                .map_err(pg_err)?;
            client.query(&stmt, &[&kb, &query, &limit]).await
        } else {
            let filter = Value::Object(filter.clone()).to_string();
            let stmt = client
                .prepare_cached(
                    "SELECT c.id, ts_rank(c.terms, q, 1) AS s FROM kb_chunks c \
                     JOIN kb_documents d ON d.kb_id = c.kb_id AND d.id = c.document, CAST($2::text AS tsquery) q \
                     WHERE c.kb_id = $1 AND c.terms @@ q AND d.metadata @> $4::text::jsonb \
                     ORDER BY s DESC, c.id LIMIT $3",
                )
                .await
                .map_err(pg_err)?;
            client.query(&stmt, &[&kb, &query, &limit, &filter]).await
        }
        .map_err(pg_err)?;
        Ok(rows
            .iter()
            .map(|r| ChunkScore {
                chunk: r.get(0),
                score: r.get::<_, f32>(1) as f64,
            })
            .collect())
    }

    async fn kb_vectors(&self, tenant: &str, collection: &str) -> StoreResult<StoredVectors> {
        let client = self.inner.pool.get().await.map_err(pool_err)?;
        let row = client
            .query_opt(
                "SELECT id, revision, dimensions FROM kb_collections WHERE tenant = $1 AND name = $2",
                &[&tenant, &collection],
            )
            .await
            .map_err(pg_err)?
            .ok_or_else(|| StoreError::KbNotFound(collection.to_string()))?;
        let (kb, revision, dims): (i64, i64, Option<i32>) = (row.get(0), row.get(1), row.get(2));
        let Some(dims) = dims else {
            return Ok(StoredVectors {
                revision,
                ..Default::default()
            });
        };
        // Row by row into one buffer: no copy of every row at once.
        let stream = client
            .query_raw(
                "SELECT c.id, c.document, c.vector, d.metadata::text FROM kb_chunks c \
                 JOIN kb_documents d ON d.kb_id = c.kb_id AND d.id = c.document \
                 WHERE c.kb_id = $1 AND c.vector IS NOT NULL ORDER BY c.document, c.ordinal",
                [&kb],
            )
            .await
            .map_err(pg_err)?;
        let mut stream = std::pin::pin!(stream);
        let mut builder = VectorsBuilder::new(revision, dims as usize);
        while let Some(r) = futures_util::StreamExt::next(&mut stream).await {
            let r = r.map_err(pg_err)?;
            builder.push(r.get(0), r.get::<_, &str>(1), r.get::<_, &[u8]>(2), || {
                crate::codec::parse_json(r.get(3))
            });
        }
        Ok(builder.finish())
    }

    async fn kb_chunk_vectors(&self, ids: &[i64]) -> StoreResult<Vec<(i64, Vec<f32>)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self
            .query(
                "SELECT id, vector FROM kb_chunks WHERE id = ANY($1) AND vector IS NOT NULL",
                &[&ids],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), vector_from_bytes(r.get::<_, &[u8]>(1))))
            .collect())
    }

    async fn kb_chunks(&self, ids: &[i64]) -> StoreResult<Vec<ChunkRecord>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self
            .query(
                "SELECT c.id, c.document, c.ordinal, d.title, d.source, c.text, d.metadata::text \
                 FROM kb_chunks c JOIN kb_documents d ON d.kb_id = c.kb_id AND d.id = c.document \
                 WHERE c.id = ANY($1)",
                &[&ids],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| ChunkRecord {
                chunk: r.get(0),
                document: r.get(1),
                ordinal: r.get::<_, i32>(2) as u32,
                title: r.get(3),
                source: r.get(4),
                text: r.get(5),
                metadata: crate::codec::parse_json(r.get(6)),
            })
            .collect())
    }
}
