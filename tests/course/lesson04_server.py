# The notes' multi-client server (000 §3.10 / 003 §5), unchanged but for the
# address: it binds 127.0.0.1 port 0 and prints "listening on ADDR" like our servers.
import socket
import sys
import threading

ENC = sys.argv[1] if len(sys.argv) > 1 else "UTF-8"


def handle_client_request(service_client_socket, ip_port):
    while True:
        recv_data = service_client_socket.recv(1024)
        if recv_data:
            print(recv_data.decode(ENC), ip_port, flush=True)
            service_client_socket.send("ok, 问题正在处理中...".encode(ENC))
        else:
            print("客户端下线了:", ip_port, flush=True)
            break
    service_client_socket.close()


if __name__ == '__main__':
    tcp_server_socket = socket.socket()
    tcp_server_socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, True)
    tcp_server_socket.bind(("127.0.0.1", 0))
    tcp_server_socket.listen(128)
    print("listening on 127.0.0.1:%d" % tcp_server_socket.getsockname()[1], file=sys.stderr, flush=True)
    while True:
        new_client_socket, ip_port = tcp_server_socket.accept()
        t = threading.Thread(target=handle_client_request, args=(new_client_socket, ip_port))
        t.daemon = True
        t.start()
