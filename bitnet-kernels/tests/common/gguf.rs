//! Just enough GGUF reading to find tensors in the shared fixtures. The real,
//! bounds-checked loader lives in bitnet-model; this one trusts its input.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub struct Tensor {
    pub dims: Vec<usize>,
    pub ty: u32,
    pub data: Vec<u8>,
}

/// `../shared/fixtures/<name>` relative to the workspace root.
pub fn fixture(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures");
    assert!(
        root.is_dir(),
        "the shared fixtures are missing: expected {} (see README)",
        root.display()
    );
    root.join(name)
}

struct Cursor<'a>(&'a [u8], usize);

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let s = &self.0[self.1..self.1 + n];
        self.1 += n;
        s
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take(4).try_into().unwrap())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take(8).try_into().unwrap())
    }
    fn string(&mut self) -> String {
        let n = self.u64() as usize;
        String::from_utf8_lossy(self.take(n)).into_owned()
    }
    fn skip_value(&mut self, ty: u32) -> Option<u64> {
        const SIZES: [usize; 13] = [1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8];
        match ty {
            8 => {
                self.string();
                None
            }
            9 => {
                let (ety, n) = (self.u32(), self.u64());
                for _ in 0..n {
                    self.skip_value(ety);
                }
                None
            }
            4 => Some(self.u32() as u64),
            10 => Some(self.u64()),
            t => {
                self.take(SIZES[t as usize]);
                None
            }
        }
    }
}

pub fn tensors(path: &Path) -> HashMap<String, Tensor> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut c = Cursor(&bytes, 0);
    assert_eq!(c.take(4), b"GGUF");
    let _version = c.u32();
    let (n_tensors, n_kv) = (c.u64(), c.u64());
    let mut alignment = 32u64;
    for _ in 0..n_kv {
        let key = c.string();
        let ty = c.u32();
        let v = c.skip_value(ty);
        if key == "general.alignment" {
            alignment = v.unwrap();
        }
    }
    let mut infos = Vec::new();
    for _ in 0..n_tensors {
        let name = c.string();
        let nd = c.u32() as usize;
        let dims: Vec<usize> = (0..nd).map(|_| c.u64() as usize).collect();
        let ty = c.u32();
        let off = c.u64() as usize;
        infos.push((name, dims, ty, off));
    }
    let base = (c.1 as u64).div_ceil(alignment) * alignment;
    // Each tensor runs to the next one's offset (or the file's end); the
    // callers cut it to the size their format implies.
    let mut offsets: Vec<usize> = infos.iter().map(|i| i.3).collect();
    offsets.sort_unstable();
    infos
        .into_iter()
        .map(|(name, dims, ty, off)| {
            let start = base as usize + off;
            let end = offsets
                .iter()
                .find(|&&o| o > off)
                .map_or(bytes.len(), |&o| base as usize + o);
            (
                name,
                Tensor {
                    dims,
                    ty,
                    data: bytes[start..end].to_vec(),
                },
            )
        })
        .collect()
}
