//! The access log entries of the proxy-native path, borrowed from the heads it already has:
//! no copy, and no second parse for the requests it forwards.

use std::net::SocketAddr;
use std::time::SystemTime;

use sluice_access_log::Entry;

use super::request::{HeadFields, LoggedHeader};

/// The entry of a request the proxy-native path forwarded, borrowed from the head it sent
/// the backend (request line, the client's headers, the `X-Request-ID` it added) where
/// writing that head found the fields.
pub(super) fn native_entry<'h>(head: &'h [u8], fields: &HeadFields, client: SocketAddr, body: u64) -> Entry<'h> {
    let field = |range: &std::ops::Range<usize>| head.get(range.clone()).unwrap_or_default();
    Entry {
        time: Some(SystemTime::now()),
        client: Some(client),
        method: field(&fields.method),
        host: field(&fields.host),
        target: field(&fields.target),
        // The native path forwards HTTP/1.1 only.
        protocol: "HTTP/1.1",
        bytes_in: head.len() as u64 + body,
        request_id: field(&fields.request_id),
        user_agent: field(&fields.user_agent),
        referer: field(&fields.referer),
        ..Entry::default()
    }
}

/// The entry of a request the proxy-native path answers itself (404), from its head as the
/// client sent it.
pub(super) fn own_answer_entry(head: &[u8], client: SocketAddr) -> Entry<'_> {
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut slots);
    let _ = request.parse(head);
    let mut entry = Entry {
        time: Some(SystemTime::now()),
        client: Some(client),
        method: request.method.unwrap_or("-").as_bytes(),
        target: request.path.unwrap_or("-").as_bytes(),
        protocol: if request.version == Some(0) { "HTTP/1.0" } else { "HTTP/1.1" },
        bytes_in: head.len() as u64,
        ..Entry::default()
    };
    for header in request.headers.iter() {
        let slot = match LoggedHeader::of(header.name) {
            Some(LoggedHeader::Host) => &mut entry.host,
            Some(LoggedHeader::Referer) => &mut entry.referer,
            Some(LoggedHeader::UserAgent) => &mut entry.user_agent,
            Some(LoggedHeader::RequestId) => &mut entry.request_id,
            None => continue,
        };
        if slot.is_empty() {
            *slot = header.value;
        }
    }
    entry
}
