# The notes' single-client TCP server (000 §3.8), unchanged but for the address:
# it binds 127.0.0.1 port 0 and prints "listening on ADDR" on stderr like our
# servers. Like the notes it does NOT set SO_REUSEADDR, and it closes the
# client's socket first, so that connection stays in TIME-WAIT on the server's
# port for a minute after the program ends.
import socket
import sys

if __name__ == '__main__':
    tcp_server_socket = socket.socket()
    tcp_server_socket.settimeout(20)
    tcp_server_socket.bind(("127.0.0.1", 0))
    tcp_server_socket.listen(128)
    print("listening on 127.0.0.1:%d" % tcp_server_socket.getsockname()[1], file=sys.stderr, flush=True)
    new_client_socket, ip_port = tcp_server_socket.accept()
    print(new_client_socket, ip_port)
    recv_data = new_client_socket.recv(1024)
    print("接收到客户端消息:", recv_data.decode("UTF-8"), flush=True)
    send_data = "我是服务器," + "你好客户端:" + str(ip_port)
    new_client_socket.send(send_data.encode("UTF-8"))
    new_client_socket.close()
    tcp_server_socket.close()
