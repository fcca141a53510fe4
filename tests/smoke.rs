//! The original design's three commands, in both dialects, against the real binary.

mod common;

use common::{resp, Server};

#[test]
fn put_get_del_in_text_and_resp() {
    let server = Server::start(&[]);
    let mut text = server.connect();
    text.roundtrip(b"PUT name Alice\n", b"OK\n");
    text.roundtrip(b"GET name\n", b"Alice\n");
    text.roundtrip(b"GET missing\r\n", b"(nil)\n");
    let mut redis = server.connect();
    redis.roundtrip(&resp(&["GET", "name"]), b"$5\r\nAlice\r\n");
    redis.roundtrip(&resp(&["DEL", "name"]), b":1\r\n");
    text.roundtrip(b"DEL name\n", b"(integer) 0\n");
}
