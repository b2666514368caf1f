//! `nftgen data` writes the procedural training samples with their captions.

mod common;

use common::*;

#[test]
fn data_command_writes_samples_captions_and_a_sheet() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("set");
    let run = nftgen(
        &[
            "data",
            "--out",
            path_str(&out),
            "--count",
            "6",
            "--seed",
            "3",
        ],
        &[],
    );
    assert_success(&run);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(out.join("captions.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    for (i, l) in lines.iter().enumerate() {
        let s = kiln_nftgen::data::sample(3, i as u64);
        assert_eq!(l["caption"], s.caption.as_str());
        let file = out.join(l["file"].as_str().unwrap());
        let mut dec =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(file).unwrap()))
                .read_info()
                .unwrap();
        let mut buf = vec![0; dec.output_buffer_size().unwrap()];
        dec.next_frame(&mut buf).unwrap();
        assert_eq!(buf, s.rgba, "sample {i} pixels");
    }
    assert!(out.join("sheet.png").is_file());
}
