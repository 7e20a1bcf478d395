package discovery

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
)

// hbaseFormat reads HBase servers: /hbase/rs/<host>,<port>,<startcode>
// (region servers), /hbase/backup-masters/<servername> and /hbase/master.
// Data is binary: 0xFF, a 4-byte big-endian length, that many bytes of
// id, "PBUF", then a protobuf message (RegionServerInfo: field 1 is
// info_port; Master: field 1 the ServerName, field 3 info_port).
type hbaseFormat struct{}

func (hbaseFormat) Name() string { return "hbase" }
func (hbaseFormat) Tree() TreeNeeds {
	return TreeNeeds{MaxDepth: 2, Data: true, DefaultPaths: []string{"/hbase/rs"}}
}

const hbasePrefix = metaPrefix + "hbase_"

var errTruncated = errors.New("truncated")

// hbasePayload strips the metadata prefix and the PBUF magic.
func hbasePayload(data []byte) ([]byte, error) {
	if len(data) > 0 && data[0] == 0xFF {
		if len(data) < 5 {
			return nil, errTruncated
		}
		n := binary.BigEndian.Uint32(data[1:5])
		if uint64(n) > uint64(len(data)-5) {
			return nil, errTruncated
		}
		data = data[5+n:]
	}
	if !bytes.HasPrefix(data, []byte("PBUF")) {
		return nil, errors.New("no PBUF magic")
	}
	return data[4:], nil
}

// uvarint decodes a protobuf varint by hand.
func uvarint(b []byte) (uint64, int, error) {
	var v uint64
	for i := 0; i < len(b) && i < 10; i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i] < 0x80 {
			return v, i + 1, nil
		}
	}
	return 0, 0, errTruncated
}

// protoFields walks one protobuf message and returns its varint fields
// and its length-delimited fields (the last of each number wins).
func protoFields(b []byte) (varints map[uint64]uint64, bytesFields map[uint64][]byte, err error) {
	varints, bytesFields = map[uint64]uint64{}, map[uint64][]byte{}
	for len(b) > 0 {
		key, n, err := uvarint(b)
		if err != nil {
			return nil, nil, err
		}
		b = b[n:]
		field, wire := key>>3, key&7
		switch wire {
		case 0:
			v, n, err := uvarint(b)
			if err != nil {
				return nil, nil, err
			}
			varints[field] = v
			b = b[n:]
		case 1:
			if len(b) < 8 {
				return nil, nil, errTruncated
			}
			b = b[8:]
		case 2:
			l, n, err := uvarint(b)
			if err != nil {
				return nil, nil, err
			}
			b = b[n:]
			if l > uint64(len(b)) {
				return nil, nil, errTruncated
			}
			bytesFields[field] = b[:l]
			b = b[l:]
		case 5:
			if len(b) < 4 {
				return nil, nil, errTruncated
			}
			b = b[4:]
		default:
			return nil, nil, errors.New("unknown wire type " + strconv.FormatUint(wire, 10))
		}
	}
	return varints, bytesFields, nil
}

// parseServerName splits host,port,startcode.
func parseServerName(s string) (host string, port int, start string, ok bool) {
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return "", 0, "", false
	}
	p, err := strconv.Atoi(parts[1])
	if err != nil || !validPort(p) || !validHost(parts[0]) {
		return "", 0, "", false
	}
	return parts[0], p, parts[2], true
}

func (f hbaseFormat) Parse(n Node) ([]Member, error) {
	var role string
	switch {
	case n.Parent == "rs":
		role = "regionserver"
	case n.Parent == "backup-masters":
		role = "backup_master"
	case n.Name == "master":
		role = "master"
	default:
		return nil, nil
	}
	var host, start string
	var rpc int
	if role != "master" {
		var ok bool
		if host, rpc, start, ok = parseServerName(n.Name); !ok {
			return nil, invalid(ReasonMalformed, "HBase server name %q is not host,port,startcode", n.Name)
		}
	}
	info := 0
	if len(n.Data) > 0 {
		pb, err := hbasePayload(n.Data)
		if err != nil {
			return nil, invalid(ReasonMalformed, "decode HBase %s data: %w", role, err)
		}
		varints, fields, err := protoFields(pb)
		if err != nil {
			return nil, invalid(ReasonMalformed, "decode HBase %s protobuf: %w", role, err)
		}
		if role == "regionserver" {
			info = int(varints[1])
		} else {
			info = int(varints[3])
			if sn, ok := fields[1]; ok {
				sv, sf, err := protoFields(sn)
				if err != nil {
					return nil, invalid(ReasonMalformed, "decode HBase master server name: %w", err)
				}
				if role == "master" {
					host, rpc = string(sf[1]), int(sv[2])
					start = strconv.FormatUint(sv[3], 10)
				}
			}
		}
	}
	if !validHost(host) {
		return nil, invalid(ReasonNoAddress, "HBase %s at %s names no host", role, n.Path)
	}
	if !validPort(rpc) {
		return nil, invalid(ReasonNoAddress, "HBase %s at %s names no RPC port (%d)", role, n.Path, rpc)
	}
	if !validPort(info) {
		info = 16030
		if role != "regionserver" {
			info = 16010
		}
	}
	l := commonLabels(f.Name(), n.Path)
	l[hbasePrefix+"role"] = model.LabelValue(role)
	l[hbasePrefix+"host"] = model.LabelValue(host)
	l[hbasePrefix+"rpc_port"] = itoa(rpc)
	l[hbasePrefix+"info_port"] = itoa(info)
	l[hbasePrefix+"start_code"] = model.LabelValue(start)
	l[hbasePrefix+"server_name"] = model.LabelValue(host + "," + strconv.Itoa(rpc) + "," + start)
	return []Member{{
		Host:      host,
		Port:      info,
		Labels:    l,
		Endpoints: map[string]Endpoint{"rpc": {Host: host, Port: rpc}},
		Defaults:  MetricsConfig{Path: "/prometheus"},
	}}, nil
}
