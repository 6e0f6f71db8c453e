//! Queries and responses in the DNS wire format, and what a response means.
//!
//! hickory-proto does the bytes; this file decides whether a response answers our question and
//! turns it into an [`Answer`] with a TTL. Decoding is bounded and checked by hickory's
//! decoder, whose errors become [`DnsError::Malformed`]: a hostile packet is an error, never a
//! panic.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::DnsError;

/// The UDP payload size we advertise with EDNS0: DNS flag day 2020's value, small enough to
/// avoid IP fragmentation on any path.
pub(crate) const UDP_PAYLOAD: u16 = 1232;
/// Answers are not kept longer than a day, whatever their TTL says.
const MAX_TTL: u32 = 86_400;
/// Negative answers are not kept longer than five minutes (RFC 2308 allows up to three hours;
/// a domain being set up should not wait that long).
const MAX_NEGATIVE_TTL: u32 = 300;
/// How many CNAMEs an answer may chain before we call it a loop.
pub(crate) const MAX_CNAME_HOPS: usize = 8;

/// What a nameserver said about a name and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// The records asked for, at least one, after following any CNAMEs.
    Records(Vec<RData>),
    /// The name is an alias whose target the response did not resolve: ask for the target.
    Alias(Name),
    /// The name does not exist.
    NxDomain,
    /// The name exists without records of this type.
    NoData,
}

/// The query for `name`, type `rtype`, with id `id`: recursion desired, EDNS0 on.
pub(crate) fn encode_query(id: u16, name: &Name, rtype: RecordType) -> Result<Vec<u8>, DnsError> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(name.clone(), rtype));
    let mut edns = Edns::new();
    edns.set_max_payload(UDP_PAYLOAD);
    message.set_edns(edns);
    message
        .to_vec()
        .map_err(|e| DnsError::InvalidName(format!("{name}: {e}")))
}

/// Decodes `bytes` and checks that they are the response to query `id` for `name`/`rtype`.
pub(crate) fn decode_response(
    bytes: &[u8],
    id: u16,
    name: &Name,
    rtype: RecordType,
) -> Result<Message, DnsError> {
    let message = Message::from_vec(bytes).map_err(|e| DnsError::Malformed(e.to_string()))?;
    let metadata = &message.metadata;
    if metadata.message_type != MessageType::Response || metadata.id != id {
        return Err(DnsError::Malformed(format!(
            "not the response to query {id}"
        )));
    }
    match message.queries.as_slice() {
        [query] if query.name() == name && query.query_type() == rtype => Ok(message),
        _ => Err(DnsError::Malformed(format!(
            "response does not repeat the question {name} {rtype}"
        ))),
    }
}

/// What `response` says about `name`/`rtype`, and for how many seconds that holds.
pub(crate) fn interpret(
    response: &Message,
    name: &Name,
    rtype: RecordType,
) -> Result<(Answer, u32), DnsError> {
    match response.metadata.response_code {
        ResponseCode::NoError => follow(&response.answers, name, rtype)
            .map(|found| found.unwrap_or_else(|| (Answer::NoData, negative_ttl(response)))),
        ResponseCode::NXDomain => Ok((Answer::NxDomain, negative_ttl(response))),
        code => Err(DnsError::ServerFailure(code.into())),
    }
}

/// Follows CNAMEs from `name` through `answers` to the records of type `rtype`; `None` when the
/// name itself has neither (NODATA).
fn follow(
    answers: &[Record],
    name: &Name,
    rtype: RecordType,
) -> Result<Option<(Answer, u32)>, DnsError> {
    let mut current = name;
    let mut ttl = MAX_TTL;
    for _ in 0..=MAX_CNAME_HOPS {
        let mut records = Vec::new();
        for record in answers.iter().filter(|r| r.name == *current) {
            if record.record_type() == rtype {
                ttl = ttl.min(record.ttl);
                records.push(record.data.clone());
            }
        }
        if !records.is_empty() {
            return Ok(Some((Answer::Records(records), ttl)));
        }
        let alias = answers.iter().find_map(|r| match &r.data {
            RData::CNAME(target) if r.name == *current => Some((&target.0, r.ttl)),
            _ => None,
        });
        match alias {
            Some((target, alias_ttl)) => {
                ttl = ttl.min(alias_ttl);
                current = target;
            }
            None if current == name => return Ok(None),
            None => return Ok(Some((Answer::Alias(current.clone()), ttl))),
        }
    }
    Err(DnsError::Malformed(format!(
        "cname chain from {name} is too long"
    )))
}

/// RFC 2308 §5: the lesser of the SOA's TTL and its minimum field; without an SOA, a negative
/// answer is not cached (0).
fn negative_ttl(response: &Message) -> u32 {
    response
        .authorities
        .iter()
        .find_map(|record| match &record.data {
            RData::SOA(soa) => Some(record.ttl.min(soa.minimum)),
            _ => None,
        })
        .unwrap_or(0)
        .min(MAX_NEGATIVE_TTL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, CNAME, SOA};

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    fn response(id: u16, rtype: RecordType, answers: Vec<Record>) -> Message {
        let mut message = Message::response(id, OpCode::Query);
        message.add_query(Query::query(name("a.example."), rtype));
        message.add_answers(answers);
        message
    }

    #[test]
    fn a_query_round_trips_with_edns() {
        let bytes = encode_query(7, &name("a.example."), RecordType::MX).unwrap();
        let query = Message::from_vec(&bytes).unwrap();
        assert_eq!(query.metadata.id, 7);
        assert!(query.metadata.recursion_desired);
        assert_eq!(query.queries[0].query_type(), RecordType::MX);
        assert_eq!(
            query.edns.as_ref().map(Edns::max_payload),
            Some(UDP_PAYLOAD)
        );
    }

    #[test]
    fn responses_must_match_the_query() {
        let bytes = response(7, RecordType::A, vec![]).to_vec().unwrap();
        let a = name("A.EXAMPLE.");
        assert!(decode_response(&bytes, 7, &a, RecordType::A).is_ok());
        assert!(decode_response(&bytes, 8, &a, RecordType::A).is_err());
        assert!(decode_response(&bytes, 7, &a, RecordType::MX).is_err());
        assert!(decode_response(&bytes, 7, &name("b.example."), RecordType::A).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let good = response(7, RecordType::A, vec![]).to_vec().unwrap();
        for len in 0..good.len() {
            let result = decode_response(&good[..len], 7, &name("a.example."), RecordType::A);
            assert!(matches!(result, Err(DnsError::Malformed(_))), "{len}");
        }
        let mut lying = good.clone();
        lying[7] = 200; // 200 answers announced, none present
        assert!(decode_response(&lying, 7, &name("a.example."), RecordType::A).is_err());
    }

    #[test]
    fn cnames_are_followed_and_ttls_are_the_least() {
        let a = Record::from_rdata(name("b.example."), 30, RData::A(A::new(192, 0, 2, 1)));
        let alias = RData::CNAME(CNAME(name("b.example.")));
        let cname = Record::from_rdata(name("a.example."), 20, alias);
        let full = response(1, RecordType::A, vec![cname.clone(), a]);
        let (answer, ttl) = interpret(&full, &name("a.example."), RecordType::A).unwrap();
        assert_eq!(
            answer,
            Answer::Records(vec![RData::A(A::new(192, 0, 2, 1))])
        );
        assert_eq!(ttl, 20);
        let dangling = response(1, RecordType::A, vec![cname]);
        let (answer, _) = interpret(&dangling, &name("a.example."), RecordType::A).unwrap();
        assert_eq!(answer, Answer::Alias(name("b.example.")));
    }

    #[test]
    fn negative_answers_live_as_long_as_the_soa_says() {
        let mut nx = response(1, RecordType::A, vec![]);
        nx.metadata.response_code = ResponseCode::NXDomain;
        assert_eq!(
            interpret(&nx, &name("a.example."), RecordType::A)
                .unwrap()
                .1,
            0
        );
        let soa = SOA::new(name("ns."), name("h."), 1, 2, 3, 4, 60);
        nx.add_authority(Record::from_rdata(name("example."), 3600, RData::SOA(soa)));
        let (answer, ttl) = interpret(&nx, &name("a.example."), RecordType::A).unwrap();
        assert_eq!((answer, ttl), (Answer::NxDomain, 60));
        nx.metadata.response_code = ResponseCode::ServFail;
        let failure = interpret(&nx, &name("a.example."), RecordType::A);
        assert!(matches!(failure, Err(DnsError::ServerFailure(2))));
    }
}
