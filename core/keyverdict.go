package core

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// What an upstream answer says about the key that was used, and whether
// another attempt may succeed. The vendors' error shapes (../shared/VENDORS.md):
//
//   - OpenAI https://platform.openai.com/docs/guides/error-codes: 401
//     invalid_api_key; 429 rate limit with Retry-After / retry-after-ms /
//     x-ratelimit-reset-requests and -tokens (durations such as "6m0s"); 429
//     with code insufficient_quota (out of money: waiting does not help); 403
//     unsupported_country_region_territory (type request_forbidden): the
//     proxy's egress region is refused, no key will help.
//   - Anthropic https://docs.anthropic.com/en/api/errors: 401
//     authentication_error, 403 permission_error, 429 rate_limit_error with
//     retry-after, 529 overloaded_error (everyone's, not the key's). An
//     unsupported region answers 403 {"error":{"type":"forbidden","message":
//     "Request not allowed"}} (anthropics/claude-code#1613), often gzipped.
//   - Gemini https://ai.google.dev/gemini-api/docs/troubleshooting: 429
//     RESOURCE_EXHAUSTED with a google.rpc.RetryInfo retryDelay ("22s"); 400
//     INVALID_ARGUMENT "API key not valid" (reason API_KEY_INVALID); 403
//     PERMISSION_DENIED; 400 FAILED_PRECONDITION "User location is not
//     supported for the API use." (a region block).

// verdict is what one attempt's outcome means.
type verdict struct {
	// retry: another attempt may succeed.
	retry bool
	// reuse: the same key may be tried again (a transient upstream fault,
	// not the key's).
	reuse bool
	// rest is how long the key rests; zero: it does not.
	rest time.Duration
	// reason names the outcome in logs and metrics (a small fixed set).
	reason string
}

// Reasons, as logged and as the reason label of oxy_retries_total.
const (
	reasonRateLimited    = "rate_limited"    // 429
	reasonQuota          = "quota"           // 429 insufficient_quota, 402
	reasonUnauthorized   = "unauthorized"    // 401, Gemini's invalid key
	reasonForbidden      = "forbidden"       // 403 that is not a region block
	reasonServerError    = "server_error"    // 500
	reasonBadGateway     = "bad_gateway"     // 502
	reasonUnavailable    = "unavailable"     // 503
	reasonGatewayTimeout = "gateway_timeout" // 504
	reasonOverloaded     = "overloaded"      // 529 (Anthropic)
	reasonConnect        = "connect"         // the upstream could not be reached
	reasonRegion         = "region_blocked"  // never retried, no key rests
)

// Rest lengths for rate limits: the vendor's headers say how long; without
// them a short default. A rest is never shorter than a second (hammering a
// limited key gets it banned) nor longer than an hour (a bad header must not
// bench a key for good; it is tried again and rests again if still limited).
const (
	defaultRateLimitRest = 10 * time.Second
	minRateLimitRest     = time.Second
	maxRateLimitRest     = time.Hour
)

// sniffLimit bounds how much of an error body is read to classify it. Vendor
// error bodies are well under 1 KiB.
const sniffLimit = 16 << 10

// needsBody reports whether classifying an answer with this status needs its body.
func needsBody(status int) bool {
	switch status {
	case http.StatusBadRequest, http.StatusForbidden, http.StatusTooManyRequests:
		return true
	}
	return false
}

// judge classifies an upstream answer; body is the start of its body (decoded
// if it was compressed), read only when needsBody(res.StatusCode).
func judge(res *http.Response, body []byte, cooldown time.Duration, now time.Time) verdict {
	switch res.StatusCode {
	case http.StatusTooManyRequests:
		e := parseVendorError(body)
		if e.outOfMoney() {
			return verdict{retry: true, rest: cooldown, reason: reasonQuota}
		}
		return verdict{retry: true, rest: rateLimitRest(res.Header, e, now), reason: reasonRateLimited}
	case http.StatusPaymentRequired:
		return verdict{retry: true, rest: cooldown, reason: reasonQuota}
	case http.StatusUnauthorized:
		return verdict{retry: true, rest: cooldown, reason: reasonUnauthorized}
	case http.StatusForbidden:
		if parseVendorError(body).regionBlocked() {
			return verdict{reason: reasonRegion}
		}
		return verdict{retry: true, rest: cooldown, reason: reasonForbidden}
	case http.StatusBadRequest:
		e := parseVendorError(body)
		if e.regionBlocked() {
			return verdict{reason: reasonRegion}
		}
		if e.keyInvalid() {
			return verdict{retry: true, rest: cooldown, reason: reasonUnauthorized}
		}
	case http.StatusInternalServerError:
		return verdict{retry: true, reason: reasonServerError}
	case http.StatusBadGateway:
		return verdict{retry: true, reuse: true, reason: reasonBadGateway}
	case http.StatusServiceUnavailable:
		return verdict{retry: true, reuse: true, reason: reasonUnavailable}
	case http.StatusGatewayTimeout:
		return verdict{retry: true, reuse: true, reason: reasonGatewayTimeout}
	case 529:
		return verdict{retry: true, reason: reasonOverloaded}
	}
	return verdict{}
}

// vendorError is the union of the vendors' error bodies: OpenAI's and
// Anthropic's {"error":{"type","code","message"}}, Gemini's
// {"error":{"code":429,"status","message","details":[...]}}.
type vendorError struct {
	Code    string // OpenAI's string code; Gemini's number is not needed
	Type    string
	Status  string
	Message string
	// Details: Gemini's google.rpc details; Anthropic's details object.
	Reasons    []string // ErrorInfo reasons, Anthropic's details.error_code
	RetryDelay string   // RetryInfo retryDelay, e.g. "22s"
}

func parseVendorError(body []byte) vendorError {
	var raw struct {
		Error struct {
			Code    json.RawMessage `json:"code"`
			Type    string          `json:"type"`
			Status  string          `json:"status"`
			Message string          `json:"message"`
			Details json.RawMessage `json:"details"`
		} `json:"error"`
	}
	if len(body) == 0 || json.Unmarshal(body, &raw) != nil {
		return vendorError{}
	}
	e := vendorError{Type: raw.Error.Type, Status: raw.Error.Status, Message: raw.Error.Message}
	_ = json.Unmarshal(raw.Error.Code, &e.Code) // a number (Gemini) leaves it empty
	var list []struct {
		Reason     string `json:"reason"`
		RetryDelay string `json:"retryDelay"`
	}
	var obj struct {
		ErrorCode string `json:"error_code"`
	}
	switch {
	case json.Unmarshal(raw.Error.Details, &list) == nil:
		for _, d := range list {
			if d.Reason != "" {
				e.Reasons = append(e.Reasons, d.Reason)
			}
			if d.RetryDelay != "" {
				e.RetryDelay = d.RetryDelay
			}
		}
	case json.Unmarshal(raw.Error.Details, &obj) == nil && obj.ErrorCode != "":
		e.Reasons = append(e.Reasons, obj.ErrorCode)
	}
	return e
}

// outOfMoney: a 429 that is not a rate limit but an exhausted balance or spend
// limit, which waiting seconds does not cure: OpenAI's insufficient_quota
// (code, and sometimes type), Anthropic's enforced_spend_limit_reached.
func (e vendorError) outOfMoney() bool {
	return e.Code == "insufficient_quota" || e.Type == "insufficient_quota" ||
		e.hasReason("enforced_spend_limit_reached")
}

// regionBlocked: the upstream refuses the proxy's egress region.
func (e vendorError) regionBlocked() bool {
	switch {
	case e.Code == "unsupported_country_region_territory": // OpenAI
		return true
	case e.Status == "FAILED_PRECONDITION" && strings.Contains(e.Message, "location is not supported"): // Gemini
		return true
	case e.Type == "forbidden" && e.Message == "Request not allowed": // Anthropic
		return true
	}
	return false
}

// keyInvalid: Gemini answers an invalid key with 400, not 401.
func (e vendorError) keyInvalid() bool {
	return e.hasReason("API_KEY_INVALID") || strings.HasPrefix(e.Message, "API key not valid")
}

func (e vendorError) hasReason(r string) bool {
	for _, x := range e.Reasons {
		if x == r {
			return true
		}
	}
	return false
}

// rateLimitRest is how long a key that answered 429 rests: retry-after-ms,
// then Retry-After (seconds or an HTTP date), then Gemini's retryDelay, then
// the x-ratelimit-reset-* headers, else defaultRateLimitRest; always within
// [minRateLimitRest, maxRateLimitRest].
func rateLimitRest(h http.Header, e vendorError, now time.Time) time.Duration {
	d, ok := retryAfter(h, now)
	if !ok && e.RetryDelay != "" {
		d, ok = parseVendorDuration(e.RetryDelay)
	}
	if !ok {
		d, ok = rateLimitReset(h)
	}
	if !ok {
		d = defaultRateLimitRest
	}
	return min(max(d, minRateLimitRest), maxRateLimitRest)
}

// retryAfter reads retry-after-ms (OpenAI, milliseconds) and Retry-After
// (RFC 9110 section 10.2.3: seconds or an HTTP date).
func retryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	if v := h.Get("Retry-After-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && ms >= 0 && !math.IsInf(ms, 0) {
			return time.Duration(min(ms, float64(maxRateLimitRest/time.Millisecond)) * float64(time.Millisecond)), true
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil && s >= 0 {
		return time.Duration(min(s, int64(maxRateLimitRest/time.Second))) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// rateLimitReset reads OpenAI's x-ratelimit-reset-requests and -tokens. The
// reset of a limit whose x-ratelimit-remaining-* is 0 is the one that was
// hit (the longest, if both are); without remaining counts, the shortest.
func rateLimitReset(h http.Header) (time.Duration, bool) {
	var hit, any time.Duration
	var found bool
	for _, kind := range [...]string{"requests", "tokens"} {
		d, ok := parseVendorDuration(h.Get("X-Ratelimit-Reset-" + kind))
		if !ok {
			continue
		}
		if strings.TrimSpace(h.Get("X-Ratelimit-Remaining-"+kind)) == "0" {
			hit = max(hit, d)
		}
		if !found || d < any {
			any = d
		}
		found = true
	}
	if hit > 0 {
		return hit, true
	}
	return any, found
}

// parseVendorDuration parses a vendor's duration: Go-style ("6m0s", "1.5s",
// "20ms", as OpenAI, Groq and Gemini's protobuf Duration write them) or bare
// seconds ("30").
func parseVendorDuration(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return d, true
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil && s >= 0 && s < maxRateLimitRest.Seconds() {
		return time.Duration(s * float64(time.Second)), true
	}
	return 0, false
}

// sniffBody reads the start of res's body for judge, and puts it back so that
// the client still receives every byte. A gzip or deflate body is decoded on
// the copy only.
func sniffBody(res *http.Response) []byte {
	orig := res.Body
	raw, err := io.ReadAll(io.LimitReader(orig, sniffLimit))
	var rest io.Reader = orig // what is left past sniffLimit
	if err != nil {
		rest = errReader{err} // the client sees the same failure
	}
	res.Body = &prefixedBody{Reader: io.MultiReader(bytes.NewReader(raw), rest), Closer: orig}
	if err != nil {
		return nil
	}
	var dec io.Reader
	switch strings.ToLower(strings.TrimSpace(res.Header.Get("Content-Encoding"))) {
	case "":
		return raw
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil
		}
		dec = zr
	case "deflate":
		dec = flate.NewReader(bytes.NewReader(raw))
	default:
		return nil // br, zstd: not in the standard library; classified by status only
	}
	out, _ := io.ReadAll(io.LimitReader(dec, sniffLimit))
	return out
}

// prefixedBody is a response body whose start was already read.
type prefixedBody struct {
	io.Reader
	io.Closer
}

// errReader fails every read with err.
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
