# The notes' TCP "QQ" chat server (001 §3.3.3), unchanged but for the address:
# it binds 127.0.0.1 port 0 and prints "listening on ADDR" like our servers.
# Turn-taking: it waits for a message, then for a line typed as the answer.
import sys
from socket import *

server_socket = socket(AF_INET, SOCK_STREAM)
server_socket.bind(('127.0.0.1', 0))
server_socket.listen(1)
print("listening on 127.0.0.1:%d" % server_socket.getsockname()[1], file=sys.stderr, flush=True)

while True:
    new_socket, client_host_post = server_socket.accept()

    while True:
        recv_data = new_socket.recv(1024)
        if len(recv_data) > 0:
            print('客户端：', recv_data.decode('utf-8'), flush=True)
        if recv_data.decode('utf-8') == 'exit':
            print('客户端已经退出！', flush=True)
            break

        # 发送数据给客户端
        send_data = input('send:')
        if len(send_data) > 0:
            new_socket.send(send_data.encode('utf-8'))
    new_socket.close()

server_socket.close()
