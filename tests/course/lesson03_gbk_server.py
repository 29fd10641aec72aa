# The notes' single-client TCP server that speaks GBK (003 §3), unchanged but
# for the address: it binds 127.0.0.1 port 0 and prints "listening on ADDR" on
# stderr like our servers. Sent UTF-8 that is not valid GBK, its
# `recv_data.decode("gbk")` raises, and the program dies without replying.
import socket
import sys

if __name__ == '__main__':
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.settimeout(20)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, True)
    server.bind(("127.0.0.1", 0))
    server.listen(128)
    print("listening on 127.0.0.1:%d" % server.getsockname()[1], file=sys.stderr, flush=True)
    service_client_socket, ip_port = server.accept()
    print("接收到客户端的ip地址和端口号:", ip_port, flush=True)
    recv_data = service_client_socket.recv(1024)
    recv_content = recv_data.decode("gbk")
    print("接收客户端的数据为:", recv_content, flush=True)
    send_data = "ok, 问题正在处理中...".encode("gbk")
    service_client_socket.send(send_data)
    service_client_socket.close()
    server.close()
