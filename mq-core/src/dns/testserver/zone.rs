//! The test server's zone, and the response it gives to a query.

use std::collections::HashMap;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::dns::wire::{MAX_CNAME_HOPS, UDP_PAYLOAD};

/// The TTL of records, and of negative answers about known names, unless set otherwise.
const DEFAULT_TTL: u32 = 3600;
/// The negative TTL (SOA minimum) of NXDOMAIN answers.
const NXDOMAIN_TTL: u32 = 300;

/// The names the server knows, with their records and misbehaviour.
pub(super) type Zone = HashMap<Name, Node>;

/// One name: its records, and how to misbehave when asked about it.
#[derive(Debug, Default)]
pub(super) struct Node {
    /// Its records, of any type.
    pub(super) records: Vec<RData>,
    /// The TTL of its records and of NODATA answers ([`DEFAULT_TTL`] if unset).
    pub(super) ttl: Option<u32>,
    /// Over UDP, answer with TC set and no records.
    pub(super) truncate_udp: bool,
    /// Answer this late.
    pub(super) delay: Option<Duration>,
    /// Answer SERVFAIL.
    pub(super) fail: bool,
}

/// The response to `request`, and how long to wait before sending it; `None` for a request
/// that is not a query, which is dropped.
pub(super) fn respond(zone: &Zone, request: &[u8], udp: bool) -> Option<(Vec<u8>, Duration)> {
    let request = Message::from_vec(request).ok()?;
    if request.metadata.message_type != MessageType::Query {
        return None;
    }
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(UDP_PAYLOAD);
        response.set_edns(edns);
    }
    let mut delay = Duration::ZERO;
    match request.queries.as_slice() {
        [query] => {
            response.add_query(query.clone());
            delay = answer(zone, &mut response, query.name(), query.query_type(), udp);
        }
        _ => response.metadata.response_code = ResponseCode::FormErr,
    }
    let limit = if request.edns.is_some() {
        UDP_PAYLOAD
    } else {
        512
    };
    let mut bytes = response.to_vec().ok()?;
    if udp && bytes.len() > usize::from(limit) {
        bytes = response.truncate().to_vec().ok()?;
    }
    Some((bytes, delay))
}

/// Fills `response` for `name`/`rtype`; returns the delay.
fn answer(
    zone: &Zone,
    response: &mut Message,
    name: &Name,
    rtype: RecordType,
    udp: bool,
) -> Duration {
    let Some(node) = zone.get(name) else {
        response.metadata.response_code = ResponseCode::NXDomain;
        response.add_authority(soa(NXDOMAIN_TTL));
        return Duration::ZERO;
    };
    if node.fail {
        response.metadata.response_code = ResponseCode::ServFail;
    } else if udp && node.truncate_udp {
        response.metadata.truncation = true;
    } else {
        response.metadata.authoritative = true;
        answer_chain(zone, response, name, rtype);
    }
    node.delay.unwrap_or_default()
}

/// Adds the records of `rtype` at `name`, or the CNAME chain that leads to them; NODATA or
/// NXDOMAIN (with an SOA) where the chain ends without them.
fn answer_chain(zone: &Zone, response: &mut Message, name: &Name, rtype: RecordType) {
    let mut current = name.clone();
    for _ in 0..=MAX_CNAME_HOPS {
        let Some(node) = zone.get(&current) else {
            response.metadata.response_code = ResponseCode::NXDomain;
            response.add_authority(soa(NXDOMAIN_TTL));
            return;
        };
        let ttl = node.ttl.unwrap_or(DEFAULT_TTL);
        let found: Vec<Record> = node
            .records
            .iter()
            .filter(|data| data.record_type() == rtype)
            .map(|data| Record::from_rdata(current.clone(), ttl, data.clone()))
            .collect();
        if !found.is_empty() {
            response.add_answers(found);
            return;
        }
        let Some(RData::CNAME(target)) = node.records.iter().find(|d| matches!(d, RData::CNAME(_)))
        else {
            response.add_authority(soa(ttl));
            return;
        };
        response.add_answer(Record::from_rdata(
            current,
            ttl,
            RData::CNAME(target.clone()),
        ));
        current = target.0.clone();
    }
}

fn soa(minimum: u32) -> Record {
    let data = SOA::new(
        name("ns.test"),
        name("hostmaster.test"),
        1,
        3600,
        600,
        86_400,
        minimum,
    );
    Record::from_rdata(Name::root(), minimum, RData::SOA(data))
}

pub(super) fn name(text: &str) -> Name {
    let mut name = Name::from_ascii(text).unwrap_or_else(|e| panic!("bad name {text:?}: {e}"));
    name.set_fqdn(true);
    name
}
