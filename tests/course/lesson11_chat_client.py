# The notes' TCP "QQ" chat client (001 §3.3.3), unchanged but for the address,
# taken from argv: python3 lesson11_chat_client.py HOST PORT
import sys
from socket import *

client_socket = socket(AF_INET, SOCK_STREAM)
client_socket.connect((sys.argv[1], int(sys.argv[2])))

while True:
    send_data = input('send:')
    if len(send_data) > 0:
        client_socket.send(send_data.encode('utf-8'))
    if send_data == 'exit':
        client_socket.close()
        break

    # 客户端接收服务器返回的数据
    recv_data = client_socket.recv(1024)
    print('服务器：', recv_data.decode('utf-8'), flush=True)

client_socket.close()
