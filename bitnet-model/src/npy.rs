//! NumPy `.npy` files of little-endian `float32`, C order: what reference
//! implementations dump logits as (`np.save`), so this engine's logits can be
//! compared with theirs. Only that one dtype; no pickles, no Fortran order.

use std::io::{self, Write};

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Writes a version 1.0 header for a float32 array of `shape`; the caller
/// then writes `shape.iter().product()` values with [`write_f32`]. Writing
/// the header first lets a large array be streamed out in pieces.
pub fn write_f32_header(out: &mut impl Write, shape: &[usize]) -> io::Result<()> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    // A 1-D shape is written `(n,)`, as Python spells a one-element tuple.
    let tuple = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {tuple}, }}");
    // NumPy pads with spaces so the data starts 64-byte aligned, ending in '\n'.
    let unpadded = MAGIC.len() + 2 + 2 + dict.len() + 1;
    dict.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    dict.push('\n');
    let len = u16::try_from(dict.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "npy shape too long"))?;
    out.write_all(MAGIC)?;
    out.write_all(&[1, 0])?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(dict.as_bytes())
}

/// Writes `values` as little-endian float32 (the data after the header).
pub fn write_f32(out: &mut impl Write, values: &[f32]) -> io::Result<()> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    out.write_all(&bytes)
}

/// Parses a whole `.npy` file of little-endian float32 in C order:
/// `(shape, values)`. The error names what is wrong with the file.
pub fn read_f32(bytes: &[u8]) -> Result<(Vec<usize>, Vec<f32>), String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not a .npy file (no \\x93NUMPY magic)".into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!(".npy version {v} is not supported")),
    };
    let header = bytes
        .get(start..start + header_len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or("truncated or non-UTF-8 .npy header")?;
    if !header.contains("'descr': '<f4'") || !header.contains("'fortran_order': False") {
        return Err(format!(
            "only little-endian float32 in C order is supported, not {}",
            header.trim()
        ));
    }
    let shape_src = header
        .split_once("'shape': (")
        .and_then(|(_, rest)| rest.split_once(')'))
        .ok_or("the .npy header has no shape")?
        .0;
    let shape = shape_src
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| format!("bad .npy shape ({shape_src})"))?;
    let data = &bytes[start + header_len..];
    let count: usize = shape.iter().product();
    if data.len() != count * 4 {
        return Err(format!(
            "shape {shape:?} needs {} bytes of data, the file has {}",
            count * 4,
            data.len()
        ));
    }
    let values = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((shape, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_an_aligned_header() {
        for shape in [vec![3usize, 4], vec![5], vec![2, 1, 3]] {
            let n: usize = shape.iter().product();
            let values: Vec<f32> = (0..n).map(|i| i as f32 * -0.5 + 0.25).collect();
            let mut file = Vec::new();
            write_f32_header(&mut file, &shape).unwrap();
            assert_eq!(file.len() % 64, 0, "data must start 64-byte aligned");
            assert_eq!(*file.last().unwrap(), b'\n');
            write_f32(&mut file, &values[..n / 2]).unwrap();
            write_f32(&mut file, &values[n / 2..]).unwrap();
            assert_eq!(read_f32(&file).unwrap(), (shape, values));
        }
    }

    #[test]
    fn numpy_written_header_parses() {
        // What `np.save` writes for np.zeros((2, 3), np.float32).
        let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        let mut file = b"\x93NUMPY\x01\x00".to_vec();
        let padded = format!("{dict:<117}\n");
        file.extend((padded.len() as u16).to_le_bytes());
        file.extend(padded.as_bytes());
        file.extend([0u8; 24]);
        assert_eq!(read_f32(&file).unwrap(), (vec![2, 3], vec![0.0; 6]));
    }

    #[test]
    fn bad_files_are_errors() {
        assert!(read_f32(b"PK\x03\x04 zip").unwrap_err().contains("magic"));
        let mut file = Vec::new();
        write_f32_header(&mut file, &[4]).unwrap();
        write_f32(&mut file, &[1.0; 3]).unwrap();
        assert!(read_f32(&file).unwrap_err().contains("needs 16 bytes"));
        let descr = file.windows(3).position(|w| w == b"<f4").unwrap();
        file[descr + 2] = b'8';
        assert!(read_f32(&file).unwrap_err().contains("float32"));
    }
}
