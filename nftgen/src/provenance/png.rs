//! PNG files that carry their provenance.
//!
//! Chunks written before the image data, in this order: `kiln` (iTXt, uncompressed: the
//! record's canonical JSON), `kiln-content-hash` (tEXt: the content hash), `parameters` (tEXt:
//! the AUTOMATIC1111-style summary other tools show), `XML:com.adobe.xmp` (iTXt: an XMP packet
//! whose IPTC `DigitalSourceType` is `trainedAlgorithmicMedia`, so photo tools, browsers and
//! platforms that read the IPTC label see that the image is generated). No time or software
//! chunks: the same image and record always give the same file bytes. None of these chunks is
//! part of what a token pins (the pixels' content hash and the record are).

use std::path::Path;

use crate::error::PngError;
use crate::pipeline::GeneratedArt;
use crate::provenance::record::{ContentHash, GenerationRecord};

/// iTXt keyword holding the record.
pub const RECORD_KEYWORD: &str = "kiln";
/// tEXt keyword holding the content hash.
pub const CONTENT_HASH_KEYWORD: &str = "kiln-content-hash";
/// tEXt keyword of the AUTOMATIC1111-style parameters.
pub const PARAMETERS_KEYWORD: &str = "parameters";
/// iTXt keyword of an XMP packet in PNG (Adobe's XMP specification, part 3).
pub const XMP_KEYWORD: &str = "XML:com.adobe.xmp";
/// IPTC's digital source type for media made by a trained model from a prompt
/// (<http://cv.iptc.org/newscodes/digitalsourcetype/>).
pub const TRAINED_ALGORITHMIC_MEDIA: &str =
    "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia";

/// The XMP packet every Kiln PNG carries: the IPTC digital source type, and the recipe's
/// pipeline as the creator tool. Fixed text apart from the pipeline name (which holds no
/// characters XML escapes), so the file bytes stay a function of the image and the record.
pub fn xmp_packet(pipeline: &str) -> String {
    let tool: String = pipeline
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '/' | '.' | '_'))
        .collect();
    format!(
        "<?xpacket begin=\"\u{feff}\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>\n\
<x:xmpmeta xmlns:x=\"adobe:ns:meta/\">\n\
 <rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">\n\
  <rdf:Description rdf:about=\"\"\n\
    xmlns:Iptc4xmpExt=\"http://iptc.org/std/Iptc4xmpExt/2008-02-29/\"\n\
    xmlns:xmp=\"http://ns.adobe.com/xap/1.0/\"\n\
    Iptc4xmpExt:DigitalSourceType=\"{TRAINED_ALGORITHMIC_MEDIA}\"\n\
    xmp:CreatorTool=\"Kiln {tool}\"/>\n\
 </rdf:RDF>\n\
</x:xmpmeta>\n\
<?xpacket end=\"r\"?>"
    )
}

/// Encodes the art as a PNG with its record embedded.
pub fn encode(art: &GeneratedArt) -> Result<Vec<u8>, PngError> {
    let enc = |e: png::EncodingError| PngError::Encode(e.to_string());
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, art.width, art.height);
        encoder.set_color(png::ColorType::Rgba);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::High);
        encoder
            .add_itxt_chunk(RECORD_KEYWORD.into(), art.record.canonical_json())
            .map_err(enc)?;
        encoder
            .add_text_chunk(CONTENT_HASH_KEYWORD.into(), art.content_hash.to_string())
            .map_err(enc)?;
        encoder
            .add_text_chunk(
                PARAMETERS_KEYWORD.into(),
                latin1_safe(&art.record.a1111_parameters()),
            )
            .map_err(enc)?;
        encoder
            .add_itxt_chunk(XMP_KEYWORD.into(), xmp_packet(&art.record.pipeline))
            .map_err(enc)?;
        let mut writer = encoder.write_header().map_err(enc)?;
        writer.write_image_data(&art.rgba).map_err(enc)?;
        writer.finish().map_err(enc)?;
    }
    Ok(out)
}

/// tEXt is Latin-1: characters outside it become `?` (the `kiln` iTXt chunk keeps the exact text).
fn latin1_safe(s: &str) -> String {
    s.chars()
        .map(|c| if (c as u32) < 256 { c } else { '?' })
        .collect()
}

/// Writes the PNG atomically: a temporary file in the same directory, then a rename. On any
/// error no file (and no partial file) is left at `path`.
pub fn write(path: &Path, art: &GeneratedArt) -> Result<(), PngError> {
    let bytes = encode(art)?;
    write_atomic(path, &bytes)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PngError> {
    crate::provenance::store::write_atomic(path, bytes).map_err(|source| PngError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// A Kiln PNG read back.
#[derive(Debug, Clone, PartialEq)]
pub struct KilnPng {
    /// The embedded record.
    pub record: GenerationRecord,
    /// Content hash stored in the file, if any.
    pub stored_content_hash: Option<ContentHash>,
    /// Content hash of the pixels actually in the file.
    pub content_hash: ContentHash,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// RGBA8 pixels.
    pub rgba: Vec<u8>,
    /// The `parameters` text, if present.
    pub parameters: Option<String>,
    /// The IPTC digital source type from the file's XMP packet, if it has one
    /// ([`TRAINED_ALGORITHMIC_MEDIA`] in every Kiln PNG).
    pub digital_source_type: Option<String>,
}

impl KilnPng {
    /// True when the pixels hash to the stored content hash and the size matches the record.
    pub fn pixels_match(&self) -> bool {
        self.stored_content_hash == Some(self.content_hash)
            && self.width == self.record.width
            && self.height == self.record.height
    }
}

/// Largest PNG file Kiln reads (bytes).
pub const MAX_FILE_BYTES: u64 = 64 << 20;
/// Largest image Kiln decodes (pixels): 4096 × 4096, well above anything it paints.
pub const MAX_PIXELS: u64 = 4096 * 4096;

/// Reads a PNG file and its embedded record. Files over [`MAX_FILE_BYTES`] are refused before
/// they are read.
pub fn read(path: &Path) -> Result<KilnPng, PngError> {
    let io = |source| PngError::Io {
        path: path.to_path_buf(),
        source,
    };
    use std::io::Read;
    // A device (`/dev/zero`), a FIFO (opening one waits for a writer) or a directory has no
    // size to check: only a regular file is opened, checked again once open, and never read
    // past the cap, even if it grows while it is read.
    let not_regular = || PngError::Decode(format!("{} is not a regular file", path.display()));
    if !std::fs::metadata(path).map_err(io)?.is_file() {
        return Err(not_regular());
    }
    let file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(not_regular());
    }
    let len = meta.len();
    if len > MAX_FILE_BYTES {
        return Err(PngError::TooLarge(format!(
            "{} is {len} bytes; Kiln reads PNG files of at most {MAX_FILE_BYTES} bytes",
            path.display()
        )));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    decode(&bytes)
}

/// Decodes PNG bytes and their embedded record; pixels of any colour type become RGBA8.
///
/// The size the header declares is checked against [`MAX_PIXELS`] before any pixel buffer is
/// allocated, and the decoder's own allocations are capped: a small crafted file cannot make
/// Kiln allocate gigabytes.
pub fn decode(bytes: &[u8]) -> Result<KilnPng, PngError> {
    let dec = |e: png::DecodingError| PngError::Decode(e.to_string());
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(PngError::TooLarge(format!(
            "{} bytes; Kiln reads PNG files of at most {MAX_FILE_BYTES} bytes",
            bytes.len()
        )));
    }
    let mut decoder = png::Decoder::new_with_limits(
        std::io::Cursor::new(bytes),
        png::Limits {
            // RGBA8 of the largest image, plus room for the decoder's rows and text chunks.
            bytes: (MAX_PIXELS * 4 + MAX_FILE_BYTES) as usize,
        },
    );
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(dec)?;
    let (w, h) = (reader.info().width, reader.info().height);
    if w as u64 * h as u64 > MAX_PIXELS {
        return Err(PngError::TooLarge(format!(
            "the PNG declares {w}×{h} pixels; Kiln decodes at most {MAX_PIXELS} pixels"
        )));
    }
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| PngError::Decode("image too large".into()))?;
    let mut buf = vec![0u8; size];
    let frame = reader.next_frame(&mut buf).map_err(dec)?;
    buf.truncate(frame.buffer_size());
    let (width, height) = (frame.width, frame.height);
    let rgba: Vec<u8> = match frame.color_type {
        png::ColorType::Rgba => buf,
        png::ColorType::Rgb => buf
            .chunks(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        png::ColorType::GrayscaleAlpha => buf
            .chunks(2)
            .flat_map(|p| [p[0], p[0], p[0], p[1]])
            .collect(),
        png::ColorType::Grayscale => buf.iter().flat_map(|&g| [g, g, g, 255]).collect(),
        png::ColorType::Indexed => {
            return Err(PngError::Decode("indexed colour not expanded".into()));
        }
    };
    let _ = reader.finish();
    let info = reader.info();
    let records: Vec<_> = info
        .utf8_text
        .iter()
        .filter(|c| c.keyword == RECORD_KEYWORD)
        .collect();
    // A `kiln` keyword in any other text chunk is a second, conflicting record too.
    let elsewhere = info
        .uncompressed_latin1_text
        .iter()
        .filter(|c| c.keyword == RECORD_KEYWORD)
        .count()
        + info
            .compressed_latin1_text
            .iter()
            .filter(|c| c.keyword == RECORD_KEYWORD)
            .count();
    if records.len() + elsewhere > 1 {
        return Err(PngError::Duplicate {
            keyword: RECORD_KEYWORD,
            count: records.len() + elsewhere,
        });
    }
    let hashes = info
        .uncompressed_latin1_text
        .iter()
        .filter(|c| c.keyword == CONTENT_HASH_KEYWORD)
        .count();
    if hashes > 1 {
        return Err(PngError::Duplicate {
            keyword: CONTENT_HASH_KEYWORD,
            count: hashes,
        });
    }
    let text = |key: &str| {
        info.uncompressed_latin1_text
            .iter()
            .find(|c| c.keyword == key)
            .map(|c| c.text.clone())
    };
    let record_json = records
        .first()
        .ok_or(PngError::NoRecord)?
        .get_text()
        .map_err(dec)?;
    let record = GenerationRecord::from_json(&record_json)?;
    let stored_content_hash = match text(CONTENT_HASH_KEYWORD) {
        Some(s) => Some(s.trim().parse()?),
        None => None,
    };
    let digital_source_type = info
        .utf8_text
        .iter()
        .find(|c| c.keyword == XMP_KEYWORD)
        .and_then(|c| c.get_text().ok())
        .and_then(|xmp| {
            let key = "Iptc4xmpExt:DigitalSourceType=\"";
            let at = xmp.find(key)? + key.len();
            Some(xmp[at..].split('"').next()?.to_string())
        });
    Ok(KilnPng {
        digital_source_type,
        content_hash: ContentHash::of_rgba8(width, height, &rgba),
        record,
        stored_content_hash,
        width,
        height,
        rgba,
        parameters: text(PARAMETERS_KEYWORD),
    })
}
