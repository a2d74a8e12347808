//! A BERT sentence encoder run in-process (for all-MiniLM-L6-v2 and other BERT-architecture
//! sentence-transformers models): the model's own WordPiece tokenizer (`vocab.txt`, lowercased,
//! accents stripped, CJK characters and punctuation split as BERT does), the encoder from
//! `model.safetensors` (F32) as `config.json` describes it, mean pooling over the tokens and L2
//! normalisation. Weights are read from a folder the project's scripts install; nothing is
//! fetched.

use std::collections::HashMap;
use std::path::Path;

use ndarray::{Array1, Array2, Axis, Slice};
use serde::Deserialize;
use unicode_normalization::UnicodeNormalization;

/// Longest input in tokens, [CLS] and [SEP] included (sentence-transformers' max_seq_length).
const MAX_TOKENS: usize = 256;

#[derive(Deserialize)]
struct Config {
    hidden_size: usize,
    num_attention_heads: usize,
    num_hidden_layers: usize,
    intermediate_size: usize,
    #[serde(default = "default_eps")]
    layer_norm_eps: f32,
    #[serde(default)]
    hidden_act: Option<String>,
}

fn default_eps() -> f32 {
    1e-12
}

struct Linear {
    /// Transposed: `in × out`, so `x.dot(&w)`.
    w: Array2<f32>,
    b: Array1<f32>,
}

impl Linear {
    fn apply(&self, x: &Array2<f32>) -> Array2<f32> {
        let mut y = x.dot(&self.w);
        y += &self.b;
        y
    }
}

struct Norm {
    g: Array1<f32>,
    b: Array1<f32>,
    eps: f32,
}

impl Norm {
    fn apply(&self, x: &mut Array2<f32>) {
        let n = x.ncols() as f32;
        for mut row in x.rows_mut() {
            let mean = row.sum() / n;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
            let inv = 1.0 / (var + self.eps).sqrt();
            for ((v, g), b) in row.iter_mut().zip(&self.g).zip(&self.b) {
                *v = (*v - mean) * inv * g + b;
            }
        }
    }
}

struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    ln1: Norm,
    up: Linear,
    down: Linear,
    ln2: Norm,
}

/// The loaded model.
pub struct BertEncoder {
    vocab: HashMap<String, u32>,
    unk: u32,
    cls: u32,
    sep: u32,
    heads: usize,
    word: Array2<f32>,
    position: Array2<f32>,
    token_type: Array1<f32>,
    ln: Norm,
    layers: Vec<Layer>,
    dimensions: usize,
}

fn read(dir: &Path, name: &str) -> Result<Vec<u8>, String> {
    let path = dir.join(name);
    std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

struct Weights<'a> {
    tensors: safetensors::SafeTensors<'a>,
    prefix: &'static str,
}

impl Weights<'_> {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, String> {
        let full = format!("{}{name}", self.prefix);
        let t = self
            .tensors
            .tensor(&full)
            .map_err(|e| format!("model.safetensors: tensor `{full}`: {e}"))?;
        if t.dtype() != safetensors::Dtype::F32 {
            return Err(format!(
                "model.safetensors: tensor `{full}` is {:?}; only F32 weights are supported",
                t.dtype()
            ));
        }
        if t.shape() != shape {
            return Err(format!(
                "model.safetensors: tensor `{full}` has shape {:?}, config.json says {shape:?}",
                t.shape()
            ));
        }
        Ok(t.data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Array2<f32>, String> {
        Array2::from_shape_vec((rows, cols), self.get(name, &[rows, cols])?)
            .map_err(|e| e.to_string())
    }

    fn vector(&self, name: &str, n: usize) -> Result<Array1<f32>, String> {
        Ok(Array1::from(self.get(name, &[n])?))
    }

    fn linear(&self, name: &str, inputs: usize, outputs: usize) -> Result<Linear, String> {
        Ok(Linear {
            w: self
                .matrix(&format!("{name}.weight"), outputs, inputs)?
                .reversed_axes()
                .as_standard_layout()
                .to_owned(),
            b: self.vector(&format!("{name}.bias"), outputs)?,
        })
    }

    fn norm(&self, name: &str, n: usize, eps: f32) -> Result<Norm, String> {
        Ok(Norm {
            g: self.vector(&format!("{name}.weight"), n)?,
            b: self.vector(&format!("{name}.bias"), n)?,
            eps,
        })
    }
}

impl BertEncoder {
    /// Loads `config.json`, `vocab.txt` and `model.safetensors` from `dir`.
    pub fn load(dir: &Path) -> Result<BertEncoder, String> {
        let config: Config = serde_json::from_slice(&read(dir, "config.json")?)
            .map_err(|e| format!("config.json: {e}"))?;
        if config.hidden_act.as_deref().is_some_and(|a| a != "gelu") {
            return Err(format!(
                "config.json: hidden_act `{}` is not supported (gelu only)",
                config.hidden_act.unwrap_or_default()
            ));
        }
        let h = config.hidden_size;
        if config.num_attention_heads == 0 || !h.is_multiple_of(config.num_attention_heads) {
            return Err("config.json: hidden_size is not a multiple of num_attention_heads".into());
        }
        let vocab_text = String::from_utf8(read(dir, "vocab.txt")?)
            .map_err(|_| "vocab.txt is not UTF-8".to_string())?;
        let vocab: HashMap<String, u32> = vocab_text
            .lines()
            .enumerate()
            .map(|(i, t)| (t.to_string(), i as u32))
            .collect();
        let id = |t: &str| {
            vocab
                .get(t)
                .copied()
                .ok_or_else(|| format!("vocab.txt has no {t} token"))
        };
        let (unk, cls, sep) = (id("[UNK]")?, id("[CLS]")?, id("[SEP]")?);
        let bytes = read(dir, "model.safetensors")?;
        let tensors = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| format!("model.safetensors: {e}"))?;
        let prefix = if tensors
            .names()
            .iter()
            .any(|n| n.starts_with("bert.embeddings."))
        {
            "bert."
        } else {
            ""
        };
        let w = Weights { tensors, prefix };
        let eps = config.layer_norm_eps;
        let word = w.matrix("embeddings.word_embeddings.weight", vocab.len(), h)?;
        let positions = w
            .tensors
            .tensor(&format!("{prefix}embeddings.position_embeddings.weight"))
            .map_err(|e| format!("model.safetensors: position embeddings: {e}"))?
            .shape()
            .first()
            .copied()
            .unwrap_or(0);
        let position = w.matrix("embeddings.position_embeddings.weight", positions, h)?;
        let types = w
            .tensors
            .tensor(&format!("{prefix}embeddings.token_type_embeddings.weight"))
            .map_err(|e| format!("model.safetensors: token type embeddings: {e}"))?
            .shape()
            .first()
            .copied()
            .unwrap_or(0);
        let token_type = w
            .matrix("embeddings.token_type_embeddings.weight", types, h)?
            .row(0)
            .to_owned();
        let ln = w.norm("embeddings.LayerNorm", h, eps)?;
        let inter = config.intermediate_size;
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let p = format!("encoder.layer.{i}");
                Ok(Layer {
                    q: w.linear(&format!("{p}.attention.self.query"), h, h)?,
                    k: w.linear(&format!("{p}.attention.self.key"), h, h)?,
                    v: w.linear(&format!("{p}.attention.self.value"), h, h)?,
                    o: w.linear(&format!("{p}.attention.output.dense"), h, h)?,
                    ln1: w.norm(&format!("{p}.attention.output.LayerNorm"), h, eps)?,
                    up: w.linear(&format!("{p}.intermediate.dense"), h, inter)?,
                    down: w.linear(&format!("{p}.output.dense"), inter, h)?,
                    ln2: w.norm(&format!("{p}.output.LayerNorm"), h, eps)?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(BertEncoder {
            vocab,
            unk,
            cls,
            sep,
            heads: config.num_attention_heads,
            word,
            position,
            token_type,
            ln,
            layers,
            dimensions: h,
        })
    }

    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// Token ids of `text` with [CLS] and [SEP], cut to the model's length.
    pub fn tokenize(&self, text: &str) -> Vec<u32> {
        let limit = MAX_TOKENS.min(self.position.nrows()) - 2;
        let mut ids = vec![self.cls];
        'words: for word in basic_tokens(text) {
            for id in self.wordpiece(&word) {
                if ids.len() > limit {
                    break 'words;
                }
                ids.push(id);
            }
        }
        ids.push(self.sep);
        ids
    }

    fn wordpiece(&self, word: &str) -> Vec<u32> {
        let chars: Vec<char> = word.chars().collect();
        if chars.len() > 100 {
            return vec![self.unk];
        }
        let mut out = Vec::new();
        let mut start = 0;
        while start < chars.len() {
            let mut end = chars.len();
            let mut found = None;
            while start < end {
                let piece: String = chars[start..end].iter().collect();
                let piece = if start > 0 {
                    format!("##{piece}")
                } else {
                    piece
                };
                if let Some(id) = self.vocab.get(&piece) {
                    found = Some(*id);
                    break;
                }
                end -= 1;
            }
            match found {
                Some(id) => out.push(id),
                None => return vec![self.unk],
            }
            start = end;
        }
        out
    }

    /// The unit-length sentence vector of `text`.
    pub fn embed(&self, text: &str) -> Vec<f32> {
        let ids = self.tokenize(text);
        let n = ids.len();
        let h = self.dimensions;
        let mut x = Array2::<f32>::zeros((n, h));
        for (i, id) in ids.iter().enumerate() {
            let mut row = x.row_mut(i);
            row += &self.word.row(*id as usize);
            row += &self.position.row(i);
            row += &self.token_type;
        }
        self.ln.apply(&mut x);
        let dh = h / self.heads;
        let scale = 1.0 / (dh as f32).sqrt();
        for layer in &self.layers {
            let q = layer.q.apply(&x);
            let k = layer.k.apply(&x);
            let v = layer.v.apply(&x);
            let mut context = Array2::<f32>::zeros((n, h));
            for head in 0..self.heads {
                let cols = Slice::from(head * dh..(head + 1) * dh);
                let mut scores = q
                    .slice_axis(Axis(1), cols)
                    .dot(&k.slice_axis(Axis(1), cols).t());
                for mut row in scores.rows_mut() {
                    let max = row.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
                    let mut sum = 0.0;
                    for v in row.iter_mut() {
                        *v = ((*v - max) * scale).exp();
                        sum += *v;
                    }
                    row /= sum;
                }
                context
                    .slice_axis_mut(Axis(1), cols)
                    .assign(&scores.dot(&v.slice_axis(Axis(1), cols)));
            }
            let mut attended = layer.o.apply(&context);
            attended += &x;
            layer.ln1.apply(&mut attended);
            let mut up = layer.up.apply(&attended);
            up.mapv_inplace(gelu);
            let mut out = layer.down.apply(&up);
            out += &attended;
            layer.ln2.apply(&mut out);
            x = out;
        }
        let mean = x.mean_axis(Axis(0)).unwrap_or_else(|| Array1::zeros(h));
        let norm = mean.dot(&mean).sqrt().max(1e-12);
        mean.iter().map(|v| v / norm).collect()
    }
}

/// GELU with the error function (BERT's "gelu").
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x / std::f32::consts::SQRT_2))
}

/// The error function, to about 1e-7 (Abramowitz and Stegun 7.1.26 is 1.5e-7; this uses the
/// complementary-error-function fit of Numerical Recipes, 1.2e-7 everywhere).
fn erf(x: f32) -> f32 {
    let x = x as f64;
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    (if x >= 0.0 { 1.0 - r } else { r - 1.0 }) as f32
}

fn is_bert_cjk(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F | 0x2B820..=0x2CEAF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

fn is_punctuation(c: char) -> bool {
    let u = c as u32;
    (33..=47).contains(&u)
        || (58..=64).contains(&u)
        || (91..=96).contains(&u)
        || (123..=126).contains(&u)
        || (!c.is_alphanumeric() && !c.is_whitespace() && !c.is_control() && !is_mark(c))
}

/// Combining marks (what accent stripping removes after NFD).
fn is_mark(c: char) -> bool {
    unicode_normalization::char::is_combining_mark(c)
}

/// BERT's basic tokenizer: cleaned, lowercased, accents stripped, split at whitespace, around
/// every punctuation character and every CJK ideograph.
fn basic_tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<String>| {
        if !word.is_empty() {
            out.push(std::mem::take(word));
        }
    };
    for c in text.to_lowercase().nfd() {
        if c == '\0' || c == '\u{FFFD}' || is_mark(c) || (c.is_control() && !c.is_whitespace()) {
            continue;
        }
        if c.is_whitespace() {
            flush(&mut word, &mut out);
        } else if is_bert_cjk(c) || is_punctuation(c) {
            flush(&mut word, &mut out);
            out.push(c.to_string());
        } else {
            word.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_basic_tokenizer_splits_like_bert() {
        assert_eq!(
            basic_tokens("Héllo, WORLD!  退款ok"),
            ["hello", ",", "world", "!", "退", "款", "ok"]
        );
        assert_eq!(basic_tokens("don't\tstop"), ["don", "'", "t", "stop"]);
    }

    #[test]
    fn erf_and_gelu_match_known_values() {
        assert!((erf(0.5) - 0.520_499_9).abs() < 1e-6);
        assert!((erf(-1.0) + 0.842_700_8).abs() < 1e-6);
        assert!((gelu(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!(gelu(-10.0).abs() < 1e-6);
    }
}
