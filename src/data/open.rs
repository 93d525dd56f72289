//! Opening a data file, compressed or not: every reader reads gzip files
//! (`train.tsv.gz`, `corpus.jsonl.gz`), recognised by their magic bytes
//! whatever their name, as the seed's readers and pandas do. A file named
//! `.gz` that is not gzip data is an error rather than read as text: the
//! name says what its writer meant.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// The first two bytes of every gzip member (RFC 1952).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// A failure of the gzip layer (a truncated or corrupt stream), told apart
/// from the file's own I/O errors so that the diagnostic can say so.
#[derive(Debug)]
pub struct GzipError {
    pub message: String,
}

impl std::fmt::Display for GzipError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the gzip data is damaged: {}", self.message)
    }
}

impl std::error::Error for GzipError {}

/// Whether `e` came from the gzip layer.
pub fn is_gzip_error(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|x| x.is::<GzipError>())
}

/// The help line of a [`GzipError`].
pub const GZIP_HELP: &str = "the file is not valid gzip data (a cut download?): `gzip -t FILE` tests it; recompress it, or drop the `.gz` from a plain file's name";

/// The help line for an error of [`open`]'s reader.
pub fn help_for(e: &std::io::Error) -> &'static str {
    if is_gzip_error(e) {
        GZIP_HELP
    } else {
        "check that the file exists and is readable"
    }
}

/// A gzip decoder whose errors are [`GzipError`]s.
struct Gunzip<R: Read>(flate2::read::MultiGzDecoder<R>);

impl<R: Read> Read for Gunzip<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                GzipError {
                    message: e.to_string(),
                },
            )
        })
    }
}

/// Whether the file is gzip-compressed, by its first bytes.
fn starts_gzip(file: &mut std::fs::File) -> std::io::Result<bool> {
    use std::io::{Seek, SeekFrom};
    let mut head = [0u8; 2];
    let mut got = 0;
    while got < 2 {
        match file.read(&mut head[got..])? {
            0 => break,
            n => got += n,
        }
    }
    file.seek(SeekFrom::Start(0))?;
    Ok(got == 2 && head == GZIP_MAGIC)
}

/// The text of `path`, decompressed when it is gzip data; buffered.
pub fn open(path: &Path) -> std::io::Result<Box<dyn BufRead + Send>> {
    let mut file = std::fs::File::open(path)?;
    let named_gz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    if starts_gzip(&mut file)? {
        let inner = BufReader::new(file);
        return Ok(Box::new(BufReader::new(Gunzip(
            flate2::read::MultiGzDecoder::new(inner),
        ))));
    }
    if named_gz && file.metadata()?.len() > 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            GzipError {
                message: "it is named `.gz` but does not start with the gzip magic bytes".into(),
            },
        ));
    }
    Ok(Box::new(BufReader::new(file)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn read(path: &Path) -> std::io::Result<String> {
        let mut s = String::new();
        open(path)?.read_to_string(&mut s)?;
        Ok(s)
    }

    #[test]
    fn gzip_by_magic_whatever_the_name_and_plain_text_as_is() {
        let dir = tempfile::tempdir().unwrap();
        let text = "a\tb\t0.5\nc\td\t1.0\n";
        for (name, bytes) in [
            ("x.tsv.gz", gz(text.as_bytes())),
            ("x.tsv", gz(text.as_bytes())),
            ("y.tsv", text.as_bytes().to_vec()),
        ] {
            std::fs::write(dir.path().join(name), &bytes).unwrap();
            assert_eq!(read(&dir.path().join(name)).unwrap(), text, "{name}");
        }
        // Concatenated members (`cat a.gz b.gz`) read as one text.
        let mut two = gz(b"a\n");
        two.extend(gz(b"b\n"));
        std::fs::write(dir.path().join("two.gz"), two).unwrap();
        assert_eq!(read(&dir.path().join("two.gz")).unwrap(), "a\nb\n");
    }

    #[test]
    fn damaged_or_misnamed_gzip_is_a_gzip_error() {
        let dir = tempfile::tempdir().unwrap();
        let full = gz("a\tb\t0.5\n".repeat(1000).as_bytes());
        std::fs::write(dir.path().join("cut.tsv.gz"), &full[..full.len() / 2]).unwrap();
        std::fs::write(dir.path().join("plain.tsv.gz"), "a\tb\n").unwrap();
        for name in ["cut.tsv.gz", "plain.tsv.gz"] {
            let e = read(&dir.path().join(name)).unwrap_err();
            assert!(is_gzip_error(&e), "{name}: {e}");
            assert!(help_for(&e).contains("gzip -t"));
        }
        std::fs::write(dir.path().join("empty.tsv.gz"), "").unwrap();
        assert_eq!(read(&dir.path().join("empty.tsv.gz")).unwrap(), "");
    }
}
