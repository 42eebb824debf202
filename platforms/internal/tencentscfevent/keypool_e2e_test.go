package tencentscfevent_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/platformtest"
)

// TestInvoke_keyPool runs the key-pool checks through the real SCF event
// function binary, over net/rpc with API gateway events, as the runtime
// calls it.
func TestInvoke_keyPool(t *testing.T) {
	up := platformtest.NewKeyedUpstream(t)
	f := startFunction(t, platformtest.PoolEnvList(up)...)
	platformtest.CheckKeyPool(t, up, func(t *testing.T, body string) platformtest.PoolAnswer {
		t.Helper()
		var ev map[string]any
		if err := json.Unmarshal(eventEdited(t, "apigw_chat.json", map[string]string{
			"Authorization": "Bearer " + platformtest.PoolProxyKey, "Content-Length": "",
		}, ""), &ev); err != nil {
			t.Fatal(err)
		}
		ev["body"] = body
		payload, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		r := f.invoke(t, payload)
		h := http.Header{}
		for k, v := range r.Headers {
			switch v := v.(type) {
			case string:
				h.Add(k, v)
			case []any:
				for _, x := range v {
					h.Add(k, fmt.Sprint(x))
				}
			}
		}
		return platformtest.PoolAnswer{Status: r.StatusCode, Header: h, Body: string(r.body(t))}
	})
}
