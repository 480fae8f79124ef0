//! Cross-check against `data/wire-vectors.json`: byte-exact payloads produced by an
//! independent encoder whose requests gVisor's gofer accepted and whose decoders parsed
//! gVisor's responses. For every vector the header must be ours, the payload must decode
//! under its MID to the fields the vector names, and re-encode to the same bytes.

// Test helpers fail by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use serde_json::Value;

use lisafs_protocol::wire::*;

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn vectors() -> Vec<Value> {
    let text = include_str!("data/wire-vectors.json");
    let doc: Value = serde_json::from_str(text).unwrap();
    doc["vectors"].as_array().unwrap().clone()
}

/// A numeric field, with the vectors' "NoUID"/"NoGID" spelled as the wire value.
fn num(fields: &Value, key: &str) -> u64 {
    match &fields[key] {
        Value::String(s) if s == "NoUID" || s == "NoGID" => u64::from(u32::MAX),
        value => value
            .as_u64()
            .unwrap_or_else(|| panic!("field {key} in {fields}")),
    }
}

fn text(fields: &Value, key: &str) -> Vec<u8> {
    fields[key].as_str().unwrap().as_bytes().to_vec()
}

fn strings(fields: &Value, key: &str) -> Vec<Vec<u8>> {
    fields[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().as_bytes().to_vec())
        .collect()
}

/// Checks a vector's stat description ("ino 42, reg 0644, size 4096, …"): every field it
/// names must match; fields it does not name are not checked.
fn check_statx(desc: &str, stat: &Statx) {
    let words: Vec<&str> = desc
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect();
    for pair in words.windows(2) {
        let (key, value) = (pair[0], pair[1]);
        let parse = |v: &str| {
            v.strip_prefix("0x")
                .map(|hex| u64::from_str_radix(hex, 16).unwrap())
                .unwrap_or_else(|| v.parse().unwrap_or(u64::MAX))
        };
        let file_type = |bits: u16| {
            let perm = u16::from_str_radix(value, 8).unwrap();
            assert_eq!(stat.mode, bits | perm, "{desc}: mode");
        };
        match key {
            "ino" => assert_eq!(stat.ino, parse(value), "{desc}: ino"),
            "size" => assert_eq!(stat.size, parse(value), "{desc}: size"),
            "nlink" => assert_eq!(u64::from(stat.nlink), parse(value), "{desc}"),
            "uid" => assert_eq!(u64::from(stat.uid), parse(value), "{desc}"),
            "gid" => assert_eq!(u64::from(stat.gid), parse(value), "{desc}"),
            "mask" => assert_eq!(u64::from(stat.mask), parse(value), "{desc}"),
            "blksize" => assert_eq!(u64::from(stat.blksize), parse(value), "{desc}"),
            "blocks" => assert_eq!(stat.blocks, parse(value), "{desc}"),
            "times" => assert_eq!(stat.mtime.sec, 0, "{desc}"),
            "dir" if value.len() == 4 => file_type(0o040000),
            "reg" if value.len() == 4 => file_type(0o100000),
            "sock" if value.len() == 4 => file_type(0o140000),
            _ => {}
        }
    }
}

/// Compares a decoded message with the fields its vector names.
fn check_fields(name: &str, kind: &str, f: &Value, decoded: &AnyMessage) {
    use AnyMessage::{Req, Resp};
    match (name, kind, decoded) {
        ("Mount", "request", Req(AnyRequest::Mount(_))) => {}
        ("Mount", "response", Resp(AnyResponse::Mount(m))) => {
            assert_eq!(m.root.control_fd.0, num(f, "root.control_fd"));
            check_statx(f["root.statx"].as_str().unwrap(), &m.root.stat);
            assert_eq!(u64::from(m.max_message_size), num(f, "max_message_size"));
            let want: Vec<u16> = f["supported"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| u16::try_from(v.as_u64().unwrap()).unwrap())
                .collect();
            assert_eq!(m.supported, want);
        }
        ("Channel", "request", Req(AnyRequest::Channel(_))) => {}
        ("Channel", "response", Resp(AnyResponse::Channel(m))) => {
            assert_eq!(u64::try_from(m.data_offset).unwrap(), num(f, "data_offset"));
            assert_eq!(m.data_length, num(f, "data_length"));
        }
        ("Error", "response", Resp(AnyResponse::Error(m))) => {
            assert_eq!(u64::from(m.errno.0), num(f, "errno"));
        }
        ("FStat", "request", Req(AnyRequest::FStat(m))) => assert_eq!(m.fd.0, num(f, "fd")),
        ("FStat", "response", Resp(AnyResponse::FStat(m))) => {
            check_statx(f["statx"].as_str().unwrap(), &m.stat);
        }
        ("SetStat", "request", Req(AnyRequest::SetStat(m))) => {
            assert_eq!(m.fd.0, num(f, "fd"));
            assert_eq!(u64::from(m.mask), num(f, "mask"));
            assert_eq!(u64::from(m.mode), num(f, "mode"));
            assert_eq!(u64::from(m.uid.0), num(f, "uid"));
            assert_eq!(u64::from(m.gid.0), num(f, "gid"));
            assert_eq!(m.size, num(f, "size"));
            assert_eq!(f["atime"], serde_json::json!([m.atime.sec, m.atime.nsec]));
            assert_eq!(f["mtime"], serde_json::json!([m.mtime.sec, m.mtime.nsec]));
        }
        ("SetStat", "response", Resp(AnyResponse::SetStat(m))) => {
            assert_eq!(u64::from(m.failure_mask), num(f, "failure_mask"));
            assert_eq!(u64::from(m.failure_errno), num(f, "failure_errno"));
        }
        ("Walk", "request", Req(AnyRequest::Walk(m))) => check_walk(f, m.dir_fd, &m.path),
        ("WalkStat", "request", Req(AnyRequest::WalkStat(m))) => {
            check_walk(f, m.dir_fd, &m.path);
        }
        ("Walk", "response", Resp(AnyResponse::Walk(m))) => {
            assert_eq!(m.status as u64, num(f, "status"));
            let want = f["inodes"].as_array().unwrap();
            assert_eq!(m.inodes.len(), want.len());
            for (inode, w) in m.inodes.iter().zip(want) {
                assert_eq!(inode.control_fd.0, num(w, "control_fd"));
                check_statx(w["statx"].as_str().unwrap(), &inode.stat);
            }
        }
        ("WalkStat", "response", Resp(AnyResponse::WalkStat(m))) => {
            let want = f["stats"].as_array().unwrap();
            assert_eq!(m.stats.len(), want.len());
            for (stat, w) in m.stats.iter().zip(want) {
                check_statx(w.as_str().unwrap(), stat);
            }
        }
        ("OpenAt", "request", Req(AnyRequest::OpenAt(m))) => {
            assert_eq!(m.fd.0, num(f, "fd"));
            assert_eq!(u64::from(m.flags), num(f, "flags"));
        }
        ("OpenAt", "response", Resp(AnyResponse::OpenAt(m))) => {
            assert_eq!(m.open_fd.0, num(f, "open_fd"));
            assert_eq!(Mid::OpenAt.response_fds() as u64, num(f, "donated_fds"));
        }
        ("OpenCreateAt", "request", Req(AnyRequest::OpenCreateAt(m))) => {
            check_common(f, &m.common);
            assert_eq!(u64::from(m.flags), num(f, "flags"));
            assert_eq!(m.name.as_bytes(), text(f, "name"));
        }
        ("OpenCreateAt", "response", Resp(AnyResponse::OpenCreateAt(m))) => {
            assert_eq!(m.child.control_fd.0, num(f, "child.control_fd"));
            check_statx(f["child.statx"].as_str().unwrap(), &m.child.stat);
            assert_eq!(m.new_fd.0, num(f, "new_fd"));
        }
        ("Close", "request", Req(AnyRequest::Close(m))) => check_fds(f, &m.fds),
        ("FSync", "request", Req(AnyRequest::FSync(m))) => check_fds(f, &m.fds),
        ("Close", "response", Resp(AnyResponse::Close(_))) => {}
        ("PWrite", "request", Req(AnyRequest::PWrite(m))) => {
            assert_eq!(m.fd.0, num(f, "fd"));
            assert_eq!(m.offset, num(f, "offset"));
            assert_eq!(m.data, text(f, "data"));
        }
        ("PWrite", "response", Resp(AnyResponse::PWrite(m))) => {
            assert_eq!(m.count, num(f, "count"));
        }
        ("PRead", "request", Req(AnyRequest::PRead(m))) => {
            assert_eq!(m.fd.0, num(f, "fd"));
            assert_eq!(m.offset, num(f, "offset"));
            assert_eq!(u64::from(m.count), num(f, "count"));
        }
        ("PRead", "response", Resp(AnyResponse::PRead(m))) => {
            assert_eq!(m.data.len() as u64, num(f, "num_bytes"));
            assert_eq!(m.data, text(f, "data"));
        }
        ("MkdirAt", "request", Req(AnyRequest::MkdirAt(m))) => {
            check_common(f, &m.common);
            assert_eq!(m.name.as_bytes(), text(f, "name"));
        }
        ("MkdirAt", "response", Resp(AnyResponse::MkdirAt(m))) => {
            let desc = f["inode"].as_str().unwrap();
            assert!(desc.starts_with(&format!("control_fd {},", m.child.control_fd.0)));
            check_statx(desc, &m.child.stat);
        }
        ("MknodAt", "request", Req(AnyRequest::MknodAt(m))) => {
            check_common(f, &m.common);
            assert_eq!(u64::from(m.minor), num(f, "minor"));
            assert_eq!(u64::from(m.major), num(f, "major"));
            assert_eq!(m.name.as_bytes(), text(f, "name"));
        }
        ("SymlinkAt", "request", Req(AnyRequest::SymlinkAt(m))) => {
            assert_eq!(m.dir_fd.0, num(f, "dir_fd"));
            assert_eq!(u64::from(m.uid.0), num(f, "uid"));
            assert_eq!(u64::from(m.gid.0), num(f, "gid"));
            assert_eq!(m.name.as_bytes(), text(f, "name"));
            assert_eq!(m.target.as_bytes(), text(f, "target"));
        }
        ("LinkAt", "request", Req(AnyRequest::LinkAt(m))) => {
            assert_eq!(m.dir_fd.0, num(f, "dir_fd"));
            assert_eq!(m.target.0, num(f, "target"));
            assert_eq!(m.name.as_bytes(), text(f, "name"));
        }
        ("FStatFS", "request", Req(AnyRequest::FStatFS(m))) => assert_eq!(m.fd.0, num(f, "fd")),
        ("FStatFS", "response", Resp(AnyResponse::FStatFS(m))) => {
            let s = &m.stat;
            assert_eq!(s.fs_type, num(f, "type"));
            assert_eq!(u64::try_from(s.block_size).unwrap(), num(f, "block_size"));
            assert_eq!(s.blocks, num(f, "blocks"));
            assert_eq!(s.blocks_free, num(f, "blocks_free"));
            assert_eq!(s.blocks_available, num(f, "blocks_available"));
            assert_eq!(s.files, num(f, "files"));
            assert_eq!(s.files_free, num(f, "files_free"));
            assert_eq!(s.name_length, num(f, "name_length"));
        }
        ("FAllocate", "request", Req(AnyRequest::FAllocate(m))) => {
            assert_eq!(m.fd.0, num(f, "fd"));
            assert_eq!(m.mode, num(f, "mode"));
            assert_eq!(m.offset, num(f, "offset"));
            assert_eq!(m.length, num(f, "length"));
        }
        ("ReadLinkAt", "request", Req(AnyRequest::ReadLinkAt(m))) => {
            assert_eq!(m.fd.0, num(f, "fd"));
        }
        ("ReadLinkAt", "response", Resp(AnyResponse::ReadLinkAt(m))) => {
            assert_eq!(m.target.as_bytes(), text(f, "target"));
        }
        ("Flush", "request", Req(AnyRequest::Flush(m))) => assert_eq!(m.fd.0, num(f, "fd")),
        ("Connect", "request", Req(AnyRequest::Connect(m))) => {
            assert_eq!(m.fd.0, num(f, "fd"));
            assert_eq!(u64::from(m.sock_type), num(f, "sock_type"));
        }
        ("UnlinkAt", "request", Req(AnyRequest::UnlinkAt(m))) => {
            assert_eq!(m.dir_fd.0, num(f, "dir_fd"));
            assert_eq!(u64::from(m.flags), num(f, "flags"));
            assert_eq!(m.name.as_bytes(), text(f, "name"));
        }
        ("RenameAt", "request", Req(AnyRequest::RenameAt(m))) => {
            assert_eq!(m.old_dir.0, num(f, "old_dir"));
            assert_eq!(m.new_dir.0, num(f, "new_dir"));
            assert_eq!(m.old_name.as_bytes(), text(f, "old_name"));
            assert_eq!(m.new_name.as_bytes(), text(f, "new_name"));
        }
        ("RenameAt2", "request", Req(AnyRequest::RenameAt2(m))) => {
            assert_eq!(m.old_dir.0, num(f, "old_dir"));
            assert_eq!(m.new_dir.0, num(f, "new_dir"));
            assert_eq!(m.old_name.as_bytes(), text(f, "old_name"));
            assert_eq!(m.new_name.as_bytes(), text(f, "new_name"));
            assert_eq!(u64::from(m.flags), num(f, "flags"));
        }
        ("Getdents64", "request", Req(AnyRequest::Getdents64(m))) => {
            assert_eq!(m.dir_fd.0, num(f, "dir_fd"));
            assert_eq!(i64::from(m.count), f["count"].as_i64().unwrap());
        }
        ("Getdents64", "response", Resp(AnyResponse::Getdents64(m))) => {
            let want = f["dirents"].as_array().unwrap();
            assert_eq!(m.dirents.len(), want.len());
            for (d, w) in m.dirents.iter().zip(want) {
                assert_eq!(d.ino, num(w, "ino"));
                assert_eq!(u64::from(d.dev_minor), num(w, "dev_minor"));
                assert_eq!(u64::from(d.dev_major), num(w, "dev_major"));
                assert_eq!(d.off, num(w, "off"));
                assert_eq!(u64::from(d.d_type), num(w, "type"));
                assert_eq!(d.name, text(w, "name"));
            }
        }
        ("FGetXattr", "request", Req(AnyRequest::FGetXattr(m))) => {
            assert_eq!(m.fd.0, num(f, "fd"));
            assert_eq!(u64::from(m.buf_size), num(f, "buf_size"));
            assert_eq!(m.name.as_bytes(), text(f, "name"));
        }
        ("FGetXattr", "response", Resp(AnyResponse::FGetXattr(m))) => {
            assert_eq!(m.value.as_bytes(), text(f, "value"));
        }
        ("FSetXattr", "request", Req(AnyRequest::FSetXattr(m))) => {
            assert_eq!(m.fd.0, num(f, "fd"));
            assert_eq!(u64::from(m.flags), num(f, "flags"));
            assert_eq!(m.name.as_bytes(), text(f, "name"));
            assert_eq!(m.value.as_bytes(), text(f, "value"));
        }
        ("FListXattr", "request", Req(AnyRequest::FListXattr(m))) => {
            assert_eq!(m.fd.0, num(f, "fd"));
            assert_eq!(m.size, num(f, "size"));
        }
        ("FListXattr", "response", Resp(AnyResponse::FListXattr(m))) => {
            let names: Vec<Vec<u8>> = m.xattrs.iter().map(|x| x.as_bytes().to_vec()).collect();
            assert_eq!(names, strings(f, "xattrs"));
        }
        ("FRemoveXattr", "request", Req(AnyRequest::FRemoveXattr(m))) => {
            assert_eq!(m.fd.0, num(f, "fd"));
            assert_eq!(m.name.as_bytes(), text(f, "name"));
        }
        ("BindAt", "request", Req(AnyRequest::BindAt(m))) => {
            check_common(f, &m.common);
            assert_eq!(u64::from(m.sock_type), num(f, "sock_type"));
            assert_eq!(m.name.as_bytes(), text(f, "name"));
        }
        ("BindAt", "response", Resp(AnyResponse::BindAt(m))) => {
            assert_eq!(m.child.control_fd.0, num(f, "child.control_fd"));
            check_statx(f["child.statx"].as_str().unwrap(), &m.child.stat);
            assert_eq!(m.bound_socket_fd.0, num(f, "bound_socket_fd"));
        }
        ("Listen", "request", Req(AnyRequest::Listen(m))) => {
            assert_eq!(m.fd.0, num(f, "fd"));
            assert_eq!(i64::from(m.backlog), f["backlog"].as_i64().unwrap());
        }
        ("Accept", "request", Req(AnyRequest::Accept(m))) => assert_eq!(m.fd.0, num(f, "fd")),
        ("Accept", "response", Resp(AnyResponse::Accept(m))) => {
            assert_eq!(m.peer_addr.as_bytes(), text(f, "peer_addr"));
        }
        ("ConnectWithCreds", "request", Req(AnyRequest::ConnectWithCreds(m))) => {
            assert_eq!(m.fd.0, num(f, "fd"));
            assert_eq!(u64::from(m.sock_type), num(f, "sock_type"));
            assert_eq!(u64::from(m.uid.0), num(f, "uid"));
            assert_eq!(u64::from(m.gid.0), num(f, "gid"));
        }
        other => panic!("no field check for vector {other:?}"),
    }
}

fn check_common(f: &Value, common: &CreateCommon) {
    assert_eq!(common.dir_fd.0, num(f, "dir_fd"));
    assert_eq!(u64::from(common.uid.0), num(f, "uid"));
    assert_eq!(u64::from(common.gid.0), num(f, "gid"));
    assert_eq!(u64::from(common.mode), num(f, "mode"));
}

fn check_walk(f: &Value, dir_fd: FdId, path: &[SizedString]) {
    assert_eq!(dir_fd.0, num(f, "dir_fd"));
    let path: Vec<Vec<u8>> = path.iter().map(|p| p.as_bytes().to_vec()).collect();
    assert_eq!(path, strings(f, "path"));
}

fn check_fds(f: &Value, fds: &[FdId]) {
    let fds: Vec<u64> = fds.iter().map(|fd| fd.0).collect();
    let want: Vec<u64> = f["fds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(fds, want);
}

#[derive(Debug)]
enum AnyMessage {
    Req(AnyRequest),
    Resp(AnyResponse),
}

#[test]
fn every_vector_decodes_to_its_fields_and_reencodes_byte_exact() {
    let vectors = vectors();
    assert!(vectors.len() >= 50, "only {} vectors", vectors.len());
    for v in &vectors {
        let name = v["name"].as_str().unwrap();
        let kind = v["kind"].as_str().unwrap();
        let mid = Mid::try_from(u16::try_from(v["mid"].as_u64().unwrap()).unwrap()).unwrap();
        assert_eq!(format!("{mid:?}"), name);
        let payload = unhex(v["payload"].as_str().unwrap());
        let header = SocketHeader::new(mid, u32::try_from(payload.len()).unwrap());
        assert_eq!(
            encode(&header).unwrap(),
            unhex(v["header"].as_str().unwrap()),
            "{name} {kind}: header"
        );

        let mut reencoded = Vec::new();
        let decoded = if kind == "request" {
            let req = AnyRequest::decode(mid, &payload).unwrap();
            req.encode_into(&mut reencoded).unwrap();
            AnyMessage::Req(req)
        } else {
            let resp = AnyResponse::decode(mid, &payload).unwrap();
            resp.encode_into(&mut reencoded).unwrap();
            AnyMessage::Resp(resp)
        };
        assert_eq!(reencoded, payload, "{name} {kind}: re-encoding");
        check_fields(name, kind, &v["fields"], &decoded);
    }
}
