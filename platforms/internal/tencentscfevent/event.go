package tencentscfevent

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/textproto"
	"net/url"
	"sort"
	"strings"

	"github.com/tencentyun/scf-go-lib/events"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/scfheaders"
)

// Event is the event SCF hands an event function for an HTTP request, from
// an API gateway trigger or a function URL.
//
// API gateway trigger events carry httpMethod, path (without the stage),
// headers, queryString, body, isBase64Encoded and requestContext:
// https://cloud.tencent.com/document/product/583/12513. Function-URL events
// have the same shape without requestContext and isBase64Encoded:
// https://cloud.tencent.com/document/product/583/96099.
//
// scf-go-lib's events.APIGatewayRequest parses the queryString forms (a
// string, an array of strings, or true for a flag such as "?stream") but has
// no isBase64Encoded field, so Event adds it.
type Event struct {
	events.APIGatewayRequest
	// IsBase64Encoded reports that Body is base64, as the gateway sends it
	// when its Base64 option is on (https://cloud.tencent.com/document/product/628/51799).
	IsBase64Encoded flexBool `json:"isBase64Encoded"`
}

// flexBool is a JSON boolean that also accepts "true" and "false" as strings,
// so that a gateway writing the flag as a string is not refused.
type flexBool bool

var errNotBool = errors.New("event isBase64Encoded must be true or false")

func (b *flexBool) UnmarshalJSON(data []byte) error {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	switch v := v.(type) {
	case nil:
		*b = false
	case bool:
		*b = flexBool(v)
	case string:
		switch strings.ToLower(v) {
		case "true":
			*b = true
		case "false", "":
			*b = false
		default:
			return errNotBool
		}
	default:
		return errNotBool
	}
	return nil
}

// EventError reports an event that is not a usable HTTP event. Its message
// never contains header values, query values or the body: they can carry keys.
type EventError struct {
	msg string
}

func (e *EventError) Error() string { return e.msg }

func eventError(format string, args ...any) error {
	return &EventError{msg: fmt.Sprintf(format, args...)}
}

// ParseEvent decodes an event payload.
func ParseEvent(payload []byte) (*Event, error) {
	var ev Event
	if err := json.Unmarshal(payload, &ev); err != nil {
		var syntax *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syntax), errors.As(err, &typ):
			return nil, eventError("event is not valid JSON of the API gateway shape: %v", err)
		case errors.Is(err, errNotBool):
			return nil, &EventError{msg: err.Error()}
		default:
			// scf-go-lib's queryString parser quotes the offending value,
			// which may be a key: report the rule, not the value.
			return nil, eventError("event queryString values must be strings, arrays of strings or true")
		}
	}
	if ev.Method == "" {
		return nil, eventError("event has no httpMethod: not an API gateway or function URL event")
	}
	return &ev, nil
}

// Request returns the HTTP request the event describes, carrying ctx.
func (ev *Event) Request(ctx context.Context) (*http.Request, error) {
	if !validToken(ev.Method) {
		return nil, eventError("event httpMethod is not a valid HTTP method")
	}
	u, err := eventURL(ev.Path, ev.QueryString)
	if err != nil {
		return nil, err
	}
	body := []byte(ev.Body)
	if ev.IsBase64Encoded {
		if body, err = base64.StdEncoding.DecodeString(ev.Body); err != nil {
			return nil, eventError("event isBase64Encoded is true but its body is not valid base64")
		}
	}
	header, host, err := eventHeader(ev.Headers)
	if err != nil {
		return nil, err
	}
	r := &http.Request{
		Method:     ev.Method,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     header,
		Host:       host,
		RequestURI: u.RequestURI(),
		RemoteAddr: remoteAddr(ev),
		Body:       http.NoBody,
	}
	if len(body) > 0 {
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
	}
	return r.WithContext(ctx), nil
}

// eventURL builds the request URL from the event's path, which the gateway
// hands over without its stage (/release), and its parsed query.
func eventURL(path string, qs events.APIGatewayQueryString) (*url.URL, error) {
	if path == "" {
		path = "/"
	}
	if !strings.HasPrefix(path, "/") {
		return nil, eventError("event path must start with /")
	}
	u, err := url.ParseRequestURI(path)
	if err != nil || u.Host != "" {
		return nil, eventError("event path is not a valid URL path")
	}
	u.RawQuery = encodeQuery(qs)
	u.ForceQuery = false
	return u, nil
}

// encodeQuery turns the gateway's parsed query back into a query string, in a
// stable order. A flag (queryString value true, parsed as no values) becomes a
// bare name, as in "?stream".
func encodeQuery(qs events.APIGatewayQueryString) string {
	keys := make([]string, 0, len(qs))
	for k := range qs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		vals := qs[k]
		if len(vals) == 0 {
			vals = []string{""}
		}
		for _, v := range vals {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(url.QueryEscape(k))
			if len(qs[k]) > 0 {
				b.WriteByte('=')
				b.WriteString(url.QueryEscape(v))
			}
		}
	}
	return b.String()
}

// eventHeader converts the event's headers. Host becomes the request's Host;
// Content-Length and Transfer-Encoding are dropped because the body is whole
// and its length is known.
func eventHeader(in map[string]string) (http.Header, string, error) {
	h := make(http.Header, len(in))
	var host string
	for name, value := range in {
		if !validToken(name) {
			return nil, "", eventError("event has an invalid header name")
		}
		if strings.ContainsAny(value, "\r\n\x00") {
			return nil, "", eventError("event header %s has an invalid value", textproto.CanonicalMIMEHeaderKey(name))
		}
		switch textproto.CanonicalMIMEHeaderKey(name) {
		case "Host":
			host = value
		case "Content-Length", "Transfer-Encoding":
		default:
			h.Add(name, value)
		}
	}
	return h, host, nil
}

// remoteAddr is the client's address as SCF states it, for OXY_ALLOW_CIDRS
// and OXY_FORWARD_CLIENT_IP, or "" when it is unknown (the allow-list then
// refuses the request). An API gateway event's address is its
// requestContext.sourceIp alone: the gateway sets it, while its headers are
// the client's and may carry a forged X-Scf-Remote-Addr or X-Forwarded-For. A
// function-URL event has no requestContext; its address is the
// x-scf-remote-addr header, which SCF adds and documents as the client's IP
// (see scfheaders.RemoteAddrHeader), and only when the event holds exactly one
// such header with one address.
func remoteAddr(ev *Event) string {
	var addr netip.Addr
	var ok bool
	if ev.Context != (events.APIGatewayRequestContext{}) {
		addr, ok = scfheaders.RemoteAddr([]string{ev.Context.SourceIP})
	} else {
		var values []string
		for name, v := range ev.Headers {
			if strings.EqualFold(name, scfheaders.RemoteAddrHeader) {
				values = append(values, v)
			}
		}
		addr, ok = scfheaders.RemoteAddr(values)
	}
	if !ok {
		return ""
	}
	return netip.AddrPortFrom(addr, 0).String()
}

// validToken reports whether s is an HTTP token (RFC 9110, section 5.6.2),
// as method and header names must be.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}
