module github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy

go 1.26.8

require github.com/tencentyun/scf-go-lib v0.0.0-20230904103145-13c9a7eeca80
