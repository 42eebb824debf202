package core

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Vendor error bodies as the vendors send them (sources in keyverdict.go).
const (
	openAIRateLimit   = `{"error":{"message":"Rate limit reached for gpt-4o-mini in organization org-x on requests per min (RPM): Limit 3, Used 3, Requested 1.","type":"requests","param":null,"code":"rate_limit_exceeded"}}`
	openAIQuota       = `{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}`
	openAIInvalidKey  = `{"error":{"message":"Incorrect API key provided: sk-abc***xyz.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`
	openAIRegion      = `{"error":{"code":"unsupported_country_region_territory","message":"Country, region, or territory not supported","param":null,"type":"request_forbidden"}}`
	openAIBadRequest  = `{"error":{"message":"'messages' is a required property","type":"invalid_request_error","param":null,"code":null}}`
	anthropicAuth     = `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}`
	anthropicRate     = `{"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed the rate limit for your organization"}}`
	anthropicSpend    = `{"type":"error","error":{"type":"rate_limit_error","message":"You have reached your specified API usage limits.","details":{"error_code":"enforced_spend_limit_reached"}}}`
	anthropicOverload = `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`
	anthropicPerm     = `{"type":"error","error":{"type":"permission_error","message":"Your API key does not have permission to use the specified resource."}}`
	anthropicRegion   = `{"error":{"type":"forbidden","message":"Request not allowed"}}`
	geminiRate        = `{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier","quotaValue":"250"}]},{"@type":"type.googleapis.com/google.rpc.Help","links":[{"description":"Learn more about Gemini API quotas","url":"https://ai.google.dev/gemini-api/docs/rate-limits"}]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"22s"}]}}`
	geminiInvalidKey  = `{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}}]}}`
	geminiRegion      = `{"error":{"code":400,"message":"User location is not supported for the API use.","status":"FAILED_PRECONDITION"}}`
	geminiDenied      = `{"error":{"code":403,"message":"Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.","status":"PERMISSION_DENIED"}}`
	geminiBadRequest  = `{"error":{"code":400,"message":"* GenerateContentRequest.contents: contents is not specified\n","status":"INVALID_ARGUMENT"}}`
)

func TestJudge_vendorAnswers(t *testing.T) {
	const cooldown = 7 * time.Minute
	for _, tt := range []struct {
		name   string
		status int
		header map[string]string
		body   string
		want   verdict
	}{
		{"openai rate limit", 429, map[string]string{"Retry-After": "20"}, openAIRateLimit, verdict{retry: true, rest: 20 * time.Second, reason: reasonRateLimited}},
		{"openai quota", 429, nil, openAIQuota, verdict{retry: true, rest: cooldown, reason: reasonQuota}},
		{"openai invalid key", 401, nil, openAIInvalidKey, verdict{retry: true, rest: cooldown, reason: reasonUnauthorized}},
		{"openai region", 403, nil, openAIRegion, verdict{reason: reasonRegion}},
		{"openai bad request", 400, nil, openAIBadRequest, verdict{}},
		{"openai 500", 500, nil, `{"error":{"message":"The server had an error while processing your request.","type":"server_error"}}`, verdict{retry: true, reason: reasonServerError}},
		{"openai 503", 503, nil, `{"error":{"message":"The engine is currently overloaded","type":"server_error"}}`, verdict{retry: true, reuse: true, reason: reasonUnavailable}},
		{"anthropic auth", 401, nil, anthropicAuth, verdict{retry: true, rest: cooldown, reason: reasonUnauthorized}},
		{"anthropic rate limit", 429, map[string]string{"Retry-After": "5"}, anthropicRate, verdict{retry: true, rest: 5 * time.Second, reason: reasonRateLimited}},
		{"anthropic spend limit", 429, nil, anthropicSpend, verdict{retry: true, rest: cooldown, reason: reasonQuota}},
		{"anthropic overloaded", 529, nil, anthropicOverload, verdict{retry: true, reason: reasonOverloaded}},
		{"anthropic permission", 403, nil, anthropicPerm, verdict{retry: true, rest: cooldown, reason: reasonForbidden}},
		{"anthropic region", 403, nil, anthropicRegion, verdict{reason: reasonRegion}},
		{"gemini rate limit", 429, nil, geminiRate, verdict{retry: true, rest: 22 * time.Second, reason: reasonRateLimited}},
		{"gemini invalid key", 400, nil, geminiInvalidKey, verdict{retry: true, rest: cooldown, reason: reasonUnauthorized}},
		{"gemini region", 400, nil, geminiRegion, verdict{reason: reasonRegion}},
		{"gemini permission denied", 403, nil, geminiDenied, verdict{retry: true, rest: cooldown, reason: reasonForbidden}},
		{"gemini bad request", 400, nil, geminiBadRequest, verdict{}},
		{"payment required", 402, nil, `{"error":{"message":"Insufficient credits"}}`, verdict{retry: true, rest: cooldown, reason: reasonQuota}},
		{"502", 502, nil, "<html>bad gateway</html>", verdict{retry: true, reuse: true, reason: reasonBadGateway}},
		{"504", 504, nil, "", verdict{retry: true, reuse: true, reason: reasonGatewayTimeout}},
		{"429 no body no header", 429, nil, "", verdict{retry: true, rest: defaultRateLimitRest, reason: reasonRateLimited}},
		{"200", 200, nil, `{"id":"x"}`, verdict{}},
		{"404", 404, nil, `{"error":{"message":"not found"}}`, verdict{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := &http.Response{StatusCode: tt.status, Header: http.Header{}}
			for k, v := range tt.header {
				res.Header.Set(k, v)
			}
			if got := judge(res, []byte(tt.body), cooldown, time.Now()); got != tt.want {
				t.Errorf("got %+v; want %+v", got, tt.want)
			}
		})
	}
}

func TestRateLimitRest_headers(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name   string
		header map[string]string
		body   string
		want   time.Duration
	}{
		{"retry-after seconds", map[string]string{"Retry-After": "42"}, "", 42 * time.Second},
		{"retry-after date", map[string]string{"Retry-After": now.Add(90 * time.Second).Format(http.TimeFormat)}, "", 90 * time.Second},
		{"retry-after-ms wins", map[string]string{"Retry-After-Ms": "2500", "Retry-After": "9"}, "", 2500 * time.Millisecond},
		{"retry-after over gemini's delay", map[string]string{"Retry-After": "3"}, geminiRate, 3 * time.Second},
		{"gemini retryDelay", nil, geminiRate, 22 * time.Second},
		{"openai reset of the exhausted limit", map[string]string{
			"X-Ratelimit-Remaining-Requests": "57", "X-Ratelimit-Reset-Requests": "1s",
			"X-Ratelimit-Remaining-Tokens": "0", "X-Ratelimit-Reset-Tokens": "6m0s"}, "", 6 * time.Minute},
		{"openai resets without remaining: the shortest", map[string]string{
			"X-Ratelimit-Reset-Requests": "1m30s", "X-Ratelimit-Reset-Tokens": "7.66s"}, "", 7660 * time.Millisecond},
		{"none: short default", nil, "", defaultRateLimitRest},
		{"garbage: short default", map[string]string{"Retry-After": "soon", "X-Ratelimit-Reset-Tokens": "later"}, "", defaultRateLimitRest},
		{"zero: at least a second", map[string]string{"Retry-After": "0"}, "", minRateLimitRest},
		{"a year: at most an hour", map[string]string{"Retry-After": "31536000"}, "", maxRateLimitRest},
		{"a date in the past", map[string]string{"Retry-After": now.Add(-time.Hour).Format(http.TimeFormat)}, "", minRateLimitRest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.header {
				h.Set(k, v)
			}
			if got := rateLimitRest(h, parseVendorError([]byte(tt.body)), now); got != tt.want {
				t.Errorf("got %v; want %v", got, tt.want)
			}
		})
	}
}

func TestSniffBody_keepsEveryByteForTheClient(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = io.WriteString(zw, anthropicRegion)
	zw.Close()
	long := strings.Repeat("a", sniffLimit*3)
	for _, tt := range []struct {
		name, encoding string
		wire           []byte
		wantSniff      string
	}{
		{"plain", "", []byte(openAIQuota), openAIQuota},
		{"gzip decoded on the copy only", "gzip", gz.Bytes(), anthropicRegion},
		{"longer than the sniff", "", []byte(long), long[:sniffLimit]},
		{"brotli not decoded", "br", []byte{0x0b, 0x02, 0x80}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := &http.Response{Header: http.Header{}, Body: io.NopCloser(bytes.NewReader(tt.wire))}
			if tt.encoding != "" {
				res.Header.Set("Content-Encoding", tt.encoding)
			}
			if got := sniffBody(res); string(got) != tt.wantSniff {
				t.Errorf("sniffed %d bytes %.40q; want %.40q", len(got), got, tt.wantSniff)
			}
			if got, _ := io.ReadAll(res.Body); !bytes.Equal(got, tt.wire) {
				t.Errorf("client body %d bytes; want the upstream's %d bytes unchanged", len(got), len(tt.wire))
			}
		})
	}
}

func TestMemoryKeyRests_restStartsOnceAndNeverShortens(t *testing.T) {
	m := NewMemoryKeyRests()
	ctx := t.Context()
	now := time.Now()
	if started, _ := m.Rest(ctx, "r", 2, now.Add(time.Minute)); !started {
		t.Error("first rest: started = false")
	}
	if started, _ := m.Rest(ctx, "r", 2, now.Add(time.Second)); started {
		t.Error("second rest of a resting key: started = true")
	}
	until := make([]time.Time, 3)
	_ = m.Resting(ctx, "r", until)
	if !until[0].IsZero() || !until[1].Equal(now.Add(time.Minute)) || !until[2].IsZero() {
		t.Errorf("until = %v; want only key 2 resting, for the longer rest", until)
	}
	_ = m.Resting(ctx, "other", until)
	for i, u := range until {
		if !u.IsZero() {
			t.Errorf("route other, key %d rests until %v; want the routes apart", i+1, u)
		}
	}
}
