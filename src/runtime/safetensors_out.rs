//! Writing safetensors files as a stream: the header, then each tensor's
//! bytes straight from where they lie (an f32 tensor's CPU storage, the
//! optimizer's moment vectors) into the file.
//!
//! `safetensors::serialize` builds the whole file in memory first, and
//! candle's `View` copies each tensor's values out before that: a
//! checkpoint of MiniLM (90 MB of weights, 180 MB of moments) took three
//! transient copies of itself, which made the end of every stage the peak
//! of a run's memory (1,042 MiB against 490 MiB while it trained). The
//! bytes written are the same as `safetensors::serialize`'s: the same
//! order (by dtype, largest alignment first, then by name), the same
//! header, padded the same way.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use candle_core::{CpuStorage, DType, Storage, Tensor};
use safetensors::tensor::{Dtype, Metadata, TensorInfo};
use safetensors::View;

/// The largest header `safetensors` reads.
const MAX_HEADER: usize = 100_000_000;

/// Where one tensor of the file is read from.
#[derive(Clone, Copy)]
pub(crate) enum Source<'a> {
    /// A candle tensor: its bytes are borrowed when it is f32 and
    /// contiguous in CPU memory, and copied otherwise (one tensor at a
    /// time).
    Tensor(&'a Tensor),
    /// f32 values, written as a vector.
    F32(&'a [f32]),
}

impl Source<'_> {
    fn dtype(&self) -> Dtype {
        match self {
            Source::Tensor(t) => View::dtype(t),
            Source::F32(_) => Dtype::F32,
        }
    }

    fn shape(&self) -> Vec<usize> {
        match self {
            Source::Tensor(t) => t.dims().to_vec(),
            Source::F32(v) => vec![v.len()],
        }
    }

    fn len(&self) -> usize {
        match self {
            Source::Tensor(t) => View::data_len(t),
            Source::F32(v) => std::mem::size_of_val(*v),
        }
    }

    /// The tensor's bytes into `w`.
    fn write(&self, w: &mut dyn Write) -> std::io::Result<()> {
        match self {
            Source::F32(v) => w.write_all(&f32_bytes(v)),
            Source::Tensor(t) => {
                if Tensor::dtype(t) == DType::F32 {
                    let (storage, layout) = t.storage_and_layout();
                    if let (Storage::Cpu(CpuStorage::F32(v)), Some((a, b))) =
                        (&*storage, layout.contiguous_offsets())
                    {
                        return w.write_all(&f32_bytes(&v[a..b]));
                    }
                }
                w.write_all(&View::data(t))
            }
        }
    }
}

/// f32 values as the little-endian bytes safetensors stores.
fn f32_bytes(v: &[f32]) -> Cow<'_, [u8]> {
    if cfg!(target_endian = "little") {
        // SAFETY: an f32 is 4 initialised bytes with no padding, u8 has
        // alignment 1, and the slice covers exactly the values' memory.
        Cow::Borrowed(unsafe {
            std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v))
        })
    } else {
        Cow::Owned(v.iter().flat_map(|x| x.to_le_bytes()).collect())
    }
}

/// Why a file could not be written.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// The tensors cannot form a safetensors file (a header too large).
    Format(String),
    Io(std::io::Error),
}

/// Write `tensors` (names unique) and `metadata` to `path` as a
/// safetensors file, through [`crate::fsio::write_with`] (synced;
/// failpoints).
pub(crate) fn write(
    path: &Path,
    tensors: &[(&str, Source)],
    metadata: Option<HashMap<String, String>>,
) -> Result<(), WriteError> {
    let (header, order, data_len) = header(tensors, metadata)?;
    let size = (8 + header.len() + data_len) as u64;
    crate::fsio::write_with(path, size, |w| {
        w.write_all(&(header.len() as u64).to_le_bytes())?;
        w.write_all(&header)?;
        for &i in &order {
            tensors[i].1.write(w)?;
        }
        Ok(())
    })
    .map_err(WriteError::Io)
}

/// The header (padded with spaces to a multiple of 8 bytes), the order the
/// tensors' bytes follow it in, and their total length.
fn header(
    tensors: &[(&str, Source)],
    metadata: Option<HashMap<String, String>>,
) -> Result<(Vec<u8>, Vec<usize>, usize), WriteError> {
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by(|&a, &b| {
        let (na, ta) = &tensors[a];
        let (nb, tb) = &tensors[b];
        tb.dtype().cmp(&ta.dtype()).then(na.cmp(nb))
    });
    let mut infos = Vec::with_capacity(tensors.len());
    let mut offset = 0;
    for &i in &order {
        let (name, t) = &tensors[i];
        let n = t.len();
        infos.push((
            name.to_string(),
            TensorInfo {
                dtype: t.dtype(),
                shape: t.shape(),
                data_offsets: (offset, offset + n),
            },
        ));
        offset += n;
    }
    let format = |e: &dyn std::fmt::Display| WriteError::Format(e.to_string());
    let meta = Metadata::new(metadata, infos).map_err(|e| format(&e))?;
    let mut bytes = serde_json::to_string(&meta)
        .map_err(|e| format(&e))?
        .into_bytes();
    bytes.resize(bytes.len().next_multiple_of(8), b' ');
    if bytes.len() > MAX_HEADER {
        return Err(format(&"the header is too large"));
    }
    Ok((bytes, order, offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn file(tensors: &[(&str, Source)], meta: Option<HashMap<String, String>>) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.safetensors");
        write(&p, tensors, meta).unwrap();
        std::fs::read(&p).unwrap()
    }

    /// The same bytes as `safetensors::serialize` for the same tensors:
    /// mixed dtypes, a transposed (non-contiguous) tensor, a slice of a
    /// larger storage, empty vectors, with and without metadata.
    #[test]
    fn the_same_bytes_as_serialize() {
        let dev = Device::Cpu;
        let a = Tensor::arange(0f32, 24.0, &dev)
            .unwrap()
            .reshape((4, 6))
            .unwrap();
        let t = a.t().unwrap();
        let part = a.narrow(0, 1, 2).unwrap();
        let ids = Tensor::new(&[3u32, 1, 4, 1, 5], &dev).unwrap();
        let half = a.to_dtype(DType::BF16).unwrap();
        let moments: Vec<f32> = (0..10).map(|i| i as f32 * 0.25 - 1.0).collect();
        let empty: Vec<f32> = Vec::new();
        let named = [
            ("b.weight", Source::Tensor(&a)),
            ("a.transposed", Source::Tensor(&t)),
            ("rows", Source::Tensor(&part)),
            ("ids", Source::Tensor(&ids)),
            ("half", Source::Tensor(&half)),
            ("m.b.weight", Source::F32(&moments)),
            ("v.empty", Source::F32(&empty)),
        ];
        let as_tensor = |s: &Source| match s {
            Source::Tensor(t) => (*t).clone(),
            Source::F32(v) => Tensor::from_slice(v, v.len(), &dev).unwrap(),
        };
        let owned: Vec<(&str, Tensor)> = named.iter().map(|(n, s)| (*n, as_tensor(s))).collect();
        for meta in [
            None,
            Some(HashMap::from([("format".to_string(), "pt".to_string())])),
        ] {
            let want =
                safetensors::serialize(owned.iter().map(|(n, t)| (*n, t)), meta.clone()).unwrap();
            assert_eq!(file(&named, meta), want);
        }
        // And it reads back.
        let got = file(&named, None);
        let back = candle_core::safetensors::load_buffer(&got, &dev).unwrap();
        let t2: Vec<f32> = back["a.transposed"]
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let t1: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(t1, t2);
        assert_eq!(back["v.empty"].dims(), &[0]);
    }

    #[test]
    fn no_tensors_is_a_file_too() {
        let want = safetensors::serialize(Vec::<(&str, &Tensor)>::new(), None).unwrap();
        assert_eq!(file(&[], None), want);
    }
}
