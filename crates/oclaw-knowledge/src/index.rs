//! The vector leg: every vector of a collection held in memory (loaded from the store, reloaded
//! when the collection's revision moves on) and scanned exactly (cosine of unit vectors).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oclaw_store::knowledge::{metadata_matches, ChunkScore, MetadataFilter, StoredVectors};
use oclaw_store::{Store, StoreResult};

/// Above this many vectors a collection being written to is reloaded at most this often (a
/// search may then miss the last second's documents); smaller ones are always current.
const LARGE: usize = 10_000;
const RELOAD_EVERY: Duration = Duration::from_secs(2);

struct Loaded {
    vectors: StoredVectors,
    at: Instant,
}

/// Loaded collections by (tenant, name).
#[derive(Default)]
pub struct VectorIndex {
    loaded: Mutex<HashMap<(String, String), Arc<Loaded>>>,
    /// One load at a time (a reload reads every vector of a collection).
    loading: tokio::sync::Mutex<()>,
}

fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Dot product with eight running sums, so the compiler vectorises it.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

impl VectorIndex {
    fn cached(&self, key: &(String, String)) -> Option<Arc<Loaded>> {
        self.loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    fn fresh(loaded: &Loaded, revision: i64) -> bool {
        loaded.vectors.revision == revision
            || (loaded.vectors.chunks.len() > LARGE && loaded.at.elapsed() < RELOAD_EVERY)
    }

    async fn get(
        &self,
        store: &dyn Store,
        tenant: &str,
        collection: &str,
        revision: i64,
    ) -> StoreResult<Arc<Loaded>> {
        let key = (tenant.to_string(), collection.to_string());
        if let Some(l) = self.cached(&key).filter(|l| Self::fresh(l, revision)) {
            return Ok(l);
        }
        let _one = self.loading.lock().await;
        if let Some(l) = self.cached(&key).filter(|l| Self::fresh(l, revision)) {
            return Ok(l);
        }
        let mut vectors = store.kb_vectors(tenant, collection).await?;
        if vectors.dimensions > 0 {
            for row in vectors.data.chunks_mut(vectors.dimensions) {
                normalize(row);
            }
        }
        let loaded = Arc::new(Loaded {
            vectors,
            at: Instant::now(),
        });
        self.loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, loaded.clone());
        Ok(loaded)
    }

    /// Forgets a collection (dropped).
    pub fn forget(&self, tenant: &str, collection: &str) {
        self.loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(tenant.to_string(), collection.to_string()));
    }

    /// Vectors held in memory, over every loaded collection.
    pub fn held(&self) -> usize {
        self.loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|l| l.vectors.chunks.len())
            .sum()
    }

    /// The `limit` chunks nearest to `query` among documents matching `filter`, best first.
    #[allow(clippy::too_many_arguments)]
    pub async fn search(
        &self,
        store: &dyn Store,
        tenant: &str,
        collection: &str,
        revision: i64,
        query: &[f32],
        filter: &MetadataFilter,
        limit: usize,
    ) -> StoreResult<Vec<ChunkScore>> {
        let loaded = self.get(store, tenant, collection, revision).await?;
        let v = &loaded.vectors;
        if v.dimensions != query.len() || limit == 0 {
            return Ok(Vec::new());
        }
        let mut q = query.to_vec();
        normalize(&mut q);
        let allowed: Option<Vec<bool>> = (!filter.is_empty()).then(|| {
            v.metadata
                .iter()
                .map(|m| metadata_matches(m, filter))
                .collect()
        });
        let mut scored: Vec<(f32, usize)> = v
            .data
            .chunks_exact(v.dimensions)
            .enumerate()
            .filter(|(i, _)| allowed.as_ref().is_none_or(|a| a[v.documents[*i] as usize]))
            .map(|(i, row)| (dot(row, &q), i))
            .collect();
        let by_score = |a: &(f32, usize), b: &(f32, usize)| b.0.total_cmp(&a.0);
        if scored.len() > limit {
            scored.select_nth_unstable_by(limit - 1, by_score);
            scored.truncate(limit);
        }
        scored.sort_by(by_score);
        Ok(scored
            .into_iter()
            .map(|(score, i)| ChunkScore {
                chunk: v.chunks[i],
                score: score as f64,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_products_cover_the_tail() {
        let a: Vec<f32> = (0..19).map(|i| i as f32).collect();
        let b = vec![1.0; 19];
        assert_eq!(dot(&a, &b), (0..19).sum::<i32>() as f32);
    }
}
