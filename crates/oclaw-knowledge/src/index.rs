//! The vector leg: every vector of a collection held in memory as 8-bit codes (a quarter of the
//! `f32` size; loaded from the store, reloaded when the collection's revision moves on) and
//! scanned in full; the best candidates of that scan are then scored exactly (cosine of the
//! stored `f32` vectors) and ranked by that score.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oclaw_store::knowledge::{metadata_matches, ChunkScore, MetadataFilter, StoredVectors};
use oclaw_store::{Store, StoreResult};
use serde_json::Value;

/// Above this many vectors a collection being written to is reloaded at most this often (a
/// search may then miss the last second's documents); smaller ones are always current.
const LARGE: usize = 10_000;
const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// Candidates of the 8-bit scan scored exactly, per result asked for (at least `MIN_CANDIDATES`).
const CANDIDATES_PER_RESULT: usize = 4;
const MIN_CANDIDATES: usize = 200;

/// A collection's vectors as 8-bit codes: row `i` is `codes[i*dim..]` times `scales[i]`.
struct Loaded {
    revision: i64,
    dimensions: usize,
    chunks: Vec<i64>,
    documents: Vec<u32>,
    metadata: Vec<Value>,
    codes: Vec<i8>,
    scales: Vec<f32>,
    at: Instant,
}

/// Unit length, then codes of -127..=127 and the scale that gives the values back.
fn quantize(v: &mut [f32], codes: &mut Vec<i8>) -> f32 {
    normalize(v);
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
    codes.extend(
        v.iter()
            .map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8),
    );
    scale
}

fn dot_codes(a: &[i8], b: &[i8]) -> i32 {
    a.iter().zip(b).map(|(x, y)| *x as i32 * *y as i32).sum()
}

impl Loaded {
    fn new(v: StoredVectors) -> Loaded {
        let n = v.chunks.len();
        let mut codes = Vec::with_capacity(n * v.dimensions);
        let mut scales = Vec::with_capacity(n);
        if v.dimensions > 0 {
            let mut data = v.data;
            for row in data.chunks_mut(v.dimensions) {
                scales.push(quantize(row, &mut codes));
            }
        }
        Loaded {
            revision: v.revision,
            dimensions: v.dimensions,
            chunks: v.chunks,
            documents: v.documents,
            metadata: v.metadata,
            codes,
            scales,
            at: Instant::now(),
        }
    }
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
        loaded.revision == revision
            || (loaded.chunks.len() > LARGE && loaded.at.elapsed() < RELOAD_EVERY)
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
        let vectors = store.kb_vectors(tenant, collection).await?;
        let loaded = Arc::new(
            tokio::task::spawn_blocking(move || Loaded::new(vectors))
                .await
                .map_err(|e| oclaw_store::StoreError::Internal(e.to_string()))?,
        );
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
            .map(|l| l.chunks.len())
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
        let v = self.get(store, tenant, collection, revision).await?;
        if v.dimensions != query.len() || limit == 0 || v.chunks.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = query.to_vec();
        let mut q_codes = Vec::with_capacity(q.len());
        quantize(&mut q, &mut q_codes);
        let allowed: Option<Vec<bool>> = (!filter.is_empty()).then(|| {
            v.metadata
                .iter()
                .map(|m| metadata_matches(m, filter))
                .collect()
        });
        let scan = {
            let v = v.clone();
            let q_codes = q_codes.clone();
            let wanted = (limit * CANDIDATES_PER_RESULT).max(MIN_CANDIDATES);
            move || top_codes(&v, &q_codes, allowed.as_deref(), wanted)
        };
        let candidates = tokio::task::spawn_blocking(scan)
            .await
            .map_err(|e| oclaw_store::StoreError::Internal(e.to_string()))?;
        // Exact cosine of the candidates, from the stored vectors.
        let ids: Vec<i64> = candidates.iter().map(|i| v.chunks[*i]).collect();
        let mut scored: Vec<ChunkScore> = store
            .kb_chunk_vectors(&ids)
            .await?
            .into_iter()
            .filter(|(_, vector)| vector.len() == q.len())
            .map(|(chunk, mut vector)| {
                normalize(&mut vector);
                ChunkScore {
                    chunk,
                    score: dot(&vector, &q) as f64,
                }
            })
            .collect();
        scored.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.chunk.cmp(&b.chunk)));
        scored.truncate(limit);
        Ok(scored)
    }
}

/// Rows at or above which the scan is split over the machine's cores.
const PARALLEL_ROWS: usize = 20_000;

/// The `wanted` best 8-bit scores of rows `from..to` (among the allowed documents' rows).
fn top_range(
    v: &Loaded,
    q: &[i8],
    allowed: Option<&[bool]>,
    wanted: usize,
    from: usize,
    to: usize,
) -> Vec<(f32, usize)> {
    let d = v.dimensions;
    let mut scored: Vec<(f32, usize)> = v.codes[from * d..to * d]
        .chunks_exact(d)
        .enumerate()
        .map(|(j, row)| (from + j, row))
        .filter(|(i, _)| allowed.is_none_or(|a| a[v.documents[*i] as usize]))
        .map(|(i, row)| (dot_codes(row, q) as f32 * v.scales[i], i))
        .collect();
    let by_score = |a: &(f32, usize), b: &(f32, usize)| b.0.total_cmp(&a.0);
    if scored.len() > wanted {
        scored.select_nth_unstable_by(wanted - 1, by_score);
        scored.truncate(wanted);
    }
    scored
}

/// Rows of the `wanted` best 8-bit scores (among the allowed documents' rows), in any order;
/// a large collection is scanned on every core at once.
fn top_codes(v: &Loaded, q: &[i8], allowed: Option<&[bool]>, wanted: usize) -> Vec<usize> {
    let n = v.chunks.len();
    let threads = std::thread::available_parallelism()
        .map(|t| t.get())
        .unwrap_or(1)
        .min(8);
    let mut scored = if n < PARALLEL_ROWS || threads < 2 {
        top_range(v, q, allowed, wanted, 0, n)
    } else {
        let per = n.div_ceil(threads);
        std::thread::scope(|s| {
            let parts: Vec<_> = (0..threads)
                .map(|t| {
                    let (from, to) = (t * per, ((t + 1) * per).min(n));
                    s.spawn(move || top_range(v, q, allowed, wanted, from, to))
                })
                .collect();
            parts
                .into_iter()
                .flat_map(|p| p.join().unwrap_or_default())
                .collect::<Vec<_>>()
        })
    };
    let by_score = |a: &(f32, usize), b: &(f32, usize)| b.0.total_cmp(&a.0);
    if scored.len() > wanted {
        scored.select_nth_unstable_by(wanted - 1, by_score);
        scored.truncate(wanted);
    }
    scored.into_iter().map(|(_, i)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 8-bit scan's candidates hold the exact top results: over random vectors, the
    /// exact top 10 of every query is among the scan's 200 candidates.
    #[test]
    fn the_quantized_scan_keeps_the_exact_best_among_its_candidates() {
        let (n, dim) = (5000, 384);
        let mut seed = 42u64;
        let mut rand = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 2000) as f32 / 1000.0 - 1.0
        };
        let data: Vec<f32> = (0..n * dim).map(|_| rand()).collect();
        let stored = StoredVectors {
            revision: 1,
            dimensions: dim,
            chunks: (0..n as i64).collect(),
            documents: vec![0; n],
            metadata: vec![Value::Null],
            data: data.clone(),
        };
        let loaded = Loaded::new(stored);
        for _ in 0..20 {
            let mut q: Vec<f32> = (0..dim).map(|_| rand()).collect();
            normalize(&mut q);
            let mut codes = Vec::new();
            let mut qq = q.clone();
            quantize(&mut qq, &mut codes);
            let candidates = top_codes(&loaded, &codes, None, 200);
            let mut exact: Vec<(f32, usize)> = data
                .chunks(dim)
                .enumerate()
                .map(|(i, row)| {
                    let mut r = row.to_vec();
                    normalize(&mut r);
                    (dot(&r, &q), i)
                })
                .collect();
            exact.sort_by(|a, b| b.0.total_cmp(&a.0));
            for (_, i) in &exact[..10] {
                assert!(candidates.contains(i), "exact top-10 row {i} missed");
            }
        }
    }

    #[test]
    fn dot_products_cover_the_tail() {
        let a: Vec<f32> = (0..19).map(|i| i as f32).collect();
        let b = vec![1.0; 19];
        assert_eq!(dot(&a, &b), (0..19).sum::<i32>() as f32);
    }
}
