module github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy

go 1.26.8
