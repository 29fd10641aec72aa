//! Lesson 06 — encodings (notes 000 §3.7, 003): a socket carries bytes, and which
//! text those bytes mean depends on the encoding. No network needed: this example
//! shows, step by step,
//!
//! 1. "你好" in UTF-8 (Ubuntu, most programs) and in GBK (NetAssist on a Chinese
//!    Windows) — different bytes for the same text;
//! 2. decoding with the wrong codec: 乱码 (mojibake), GBK read as UTF-8 gives
//!    U+FFFD `�`, UTF-8 read as GBK gives wrong but valid-looking characters;
//! 3. a character split across two `recv` calls: decoding each piece alone garbles
//!    it, one streaming `TextDecoder` per connection keeps it intact;
//! 4. 😀, which GBK cannot represent: substituted by `?` or refused, with a warning
//!    either way, never sent as an HTML entity;
//! 5. NetAssist: on Windows it sends GBK and shows what it receives as UTF-8. An echo
//!    server with `--recv-encoding gbk --send-encoding utf-8` sends back the *text*,
//!    re-encoded; with one encoding both ways, the bytes as they came.
//!
//! Run (TEXT is optional and replaces "你好" in steps 1 and 2):
//!
//! ```text
//! cargo run --example 06_encodings -- [TEXT]
//! cargo run --example 06_encodings -- 我是客户端小黑
//! ```
//!
//! Nothing to run in another terminal. To see the same on a real socket, play
//! NetAssist with `tcp-client --send-encoding gbk`:
//! `cargo run --bin tcp-server -- 8080 --recv-encoding gbk --send-encoding utf-8` in
//! one terminal shows `[ADDR] 你好`, and
//! `cargo run --bin tcp-client -- 127.0.0.1 8080 你好 --send-encoding gbk --hex` in
//! another shows the UTF-8 bytes that came back, `e4 bd a0 e5 a5 bd`.

use socktools::hex::py_repr;
use std::process::ExitCode;

use socktools::codec::{
    self, CodecError, Encoding, TextDecoder, TextEncoder, Unmappable, parse_label,
};
use socktools::hex;
use socktools::message::{Echo, invalid_bytes_warning};

const USAGE: &str = "usage: 06_encodings [TEXT]   (default 你好)";

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let text = match argv.as_slice() {
        [] => "你好".to_string(),
        [h] if h == "-h" || h == "--help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        [t] if !t.is_empty() => t.clone(),
        _ => {
            eprintln!("06_encodings: expected at most one non-empty TEXT\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&text) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("06_encodings: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(text: &str) -> Result<(), CodecError> {
    // `parse_label` turns the names people type ("gbk", "GB2312", "utf8") into an
    // encoding, the way `--encoding gbk` does in the tools.
    let utf8 = parse_label("utf-8")?;
    let gbk = parse_label("gbk")?;
    //    Windows and Python also call GBK "cp936" (or "936"): the same encoding.
    let cp936 = parse_label("cp936")?;

    // 1. 编码 — encode: the same text, two encodings, different bytes.
    //    Python: `"你好".encode("UTF-8")` and `"你好".encode("gbk")`.
    heading(&format!(
        "1. {text:?} in UTF-8 and in GBK: same text, different bytes"
    ));
    let utf8_bytes = encode(utf8, text)?;
    //    Your TEXT may hold characters GBK lacks (step 4): substitute `?` and say so.
    let gbk_encoded = TextEncoder::new(gbk).encode(text, Unmappable::Substitute)?;
    let gbk_bytes = gbk_encoded.bytes;
    show_bytes("UTF-8", &utf8_bytes);
    show_bytes("GBK", &gbk_bytes);
    if !gbk_encoded.substituted.is_empty() {
        println!(
            "(GBK has no {:?}: sent as '?', see step 4)",
            gbk_encoded.substituted
        );
    }
    println!("A CJK character takes 3 bytes in UTF-8 and 2 in GBK; ASCII is 1 byte in both.");
    println!(
        "(Windows and Python call GBK \"cp936\"; `--encoding cp936` is {}.)",
        cp936.name()
    );

    // 2. 解码 — decode with the right codec, then with the wrong one.
    //    `TextDecoder::decode(bytes, true)`: `true` says the stream ends here.
    heading("2. Decoding with the wrong codec gives 乱码 (mojibake)");
    let right = decode_alone(gbk, &gbk_bytes);
    println!("GBK   bytes decoded as GBK  : {right}");
    let right = decode_alone(utf8, &utf8_bytes);
    println!("UTF-8 bytes decoded as UTF-8: {right}");
    //    GBK bytes are mostly invalid UTF-8: each bad sequence becomes U+FFFD (`�`),
    //    visible, never silently dropped, and the decoder remembers the error.
    let mut decoder = TextDecoder::new(utf8);
    let wrong = decoder.decode(&gbk_bytes, true);
    println!(
        "GBK   bytes decoded as UTF-8: {wrong}   [{}]  errors: {}",
        code_points(&wrong),
        decoder.had_errors()
    );
    //    UTF-8 bytes often ARE valid GBK, just meaning other characters: no error,
    //    only nonsense. This is the sneakier 乱码.
    let mut decoder = TextDecoder::new(gbk);
    let wrong = decoder.decode(&utf8_bytes, true);
    println!(
        "UTF-8 bytes decoded as GBK  : {wrong}   [{}]  errors: {}",
        code_points(&wrong),
        decoder.had_errors()
    );
    //    What the tools say when that happens: the warning tries the likely encodings
    //    (UTF-8, GBK, Big5, never the one in use) and names one that reads the bytes.
    println!(
        "tcp-server, given GBK bytes: warning: {}",
        invalid_bytes_warning(utf8, &gbk_bytes)
    );
    println!("The fix is not in the code but in agreement: each side must read bytes in the");
    println!("encoding the other side writes them in (step 5).");

    // 3. 分两次接收 — one character split across two reads.
    //    TCP is a byte stream: `recv(1024)` returns whatever has arrived, and the
    //    bytes of one character may be split between two calls. Here the first
    //    "recv" got the first byte(s) of 你, the second got the rest.
    heading("3. One character split across two recv() calls");
    for enc in [utf8, gbk] {
        let bytes = encode(enc, "你好")?;
        // Cut inside the first character: after 2 of UTF-8's 3 bytes, after 1 of
        // GBK's 2.
        let cut = if codec::is_utf8(enc) { 2 } else { 1 };
        let (first, second) = bytes.split_at(cut);
        println!(
            "{} \"你好\" = {} arrives as {} then {}",
            codec::display_name(enc),
            py_repr(&bytes),
            py_repr(first),
            py_repr(second)
        );
        //    Wrong: a new decoder per read. The first piece is half a character
        //    and the stream "ends" after it, so it becomes `�`; the second piece
        //    starts in the middle of a character.
        let alone = format!("{}{}", decode_alone(enc, first), decode_alone(enc, second));
        println!(
            "  decoding each read alone      : {alone}   [{}]",
            code_points(&alone)
        );
        //    Right: ONE decoder for the whole connection, `last = false` until the
        //    peer closes. It returns nothing for the first half and keeps it until
        //    the rest arrives.
        let mut decoder = TextDecoder::new(enc);
        let part1 = decoder.decode(first, false);
        let part2 = decoder.decode(second, false);
        let end = decoder.decode(&[], true); // the peer closed: flush
        println!(
            "  one streaming decoder         : read 1 -> {part1:?}, read 2 -> {part2:?}, close -> {end:?}"
        );
    }

    // 4. 无法编码的字符 — a character the encoding does not have.
    //    GBK (1995) predates emoji. What should go on the wire for 😀?
    heading("4. 😀 cannot be encoded in GBK");
    let message = "你好😀";
    let encoder = TextEncoder::new(gbk);
    //    Substitute: send `?` in its place, and say which characters were replaced
    //    so the tool can warn the user.
    let substituted = encoder.encode(message, Unmappable::Substitute)?;
    println!(
        "Unmappable::Substitute: {} and a warning that {:?} became '?'",
        py_repr(&substituted.bytes),
        substituted.substituted
    );
    //    Refuse: send nothing and report the character (`--strict-encoding`).
    match encoder.encode(message, Unmappable::Refuse) {
        Ok(e) => println!(
            "Unmappable::Refuse    : unexpectedly encoded {}",
            py_repr(&e.bytes)
        ),
        Err(e) => println!("Unmappable::Refuse    : error: {e}"),
    }
    //    (A web form would send the HTML entity for 😀 instead, which a socket peer
    //    would print literally; `TextEncoder` never does.) UTF-8 and GB18030, GBK's
    //    successor, can encode every character:
    show_bytes("😀 in UTF-8  ", &encode(utf8, "😀")?);
    show_bytes("😀 in GB18030", &encode(parse_label("gb18030")?, "😀")?);

    // 5. 网络调试助手 — NetAssist on Windows sends GBK and shows what it receives as
    //    UTF-8 (the notes: 接受消息类型UTF-8, 发送消息类型GBK). So a server that talks
    //    to it reads GBK (`--recv-encoding gbk`) and writes UTF-8 (`--send-encoding
    //    utf-8`). An echo server with two encodings sends back the TEXT: decode, then
    //    encode. With one encoding both ways it sends back the bytes as they came.
    heading("5. Echoing to NetAssist: the text, not the bytes");
    let netassist_sends = encode(gbk, "你好")?;
    let mut echo = Echo::new(gbk, utf8, Unmappable::Substitute);
    //    `read` is for one `recv` of a stream: like the display, it keeps a character
    //    cut off at the end of one read for the next.
    let (first, second) = netassist_sends.split_at(1);
    let mut back = echo.read(first)?.bytes;
    back.extend(echo.read(second)?.bytes);
    println!(
        "--recv-encoding gbk --send-encoding utf-8: {} in (as two reads), {} back = {:?}",
        py_repr(&netassist_sends),
        py_repr(&back),
        TextDecoder::new(utf8).decode(&back, true)
    );
    let same = Echo::new(gbk, gbk, Unmappable::Substitute)
        .read(&netassist_sends)?
        .bytes;
    println!(
        "--encoding gbk (one encoding both ways)  : {} back, untouched; NetAssist would show it as 乱码",
        py_repr(&same)
    );
    Ok(())
}

/// Encode a whole message, refusing what the encoding cannot represent.
fn encode(enc: &'static Encoding, text: &str) -> Result<Vec<u8>, CodecError> {
    Ok(TextEncoder::new(enc)
        .encode(text, Unmappable::Refuse)?
        .bytes)
}

/// Decode bytes as a complete stream of their own (what decoding each `recv`
/// separately amounts to).
fn decode_alone(enc: &'static Encoding, bytes: &[u8]) -> String {
    TextDecoder::new(enc).decode(bytes, true)
}

fn heading(title: &str) {
    println!("\n== {title} ==");
}

/// Print bytes as Python would, then as a hex dump.
fn show_bytes(label: &str, bytes: &[u8]) {
    println!("{label} ({} bytes): {}", bytes.len(), py_repr(bytes));
    print!("{}", hex::dump(bytes));
}

/// `U+4F60 U+597D`: the code points, so an invisible difference becomes visible.
fn code_points(text: &str) -> String {
    text.chars()
        .map(|c| format!("U+{:04X}", u32::from(c)))
        .collect::<Vec<_>>()
        .join(" ")
}
