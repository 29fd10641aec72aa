# The notes' UDP customer-service program (004 p171), unchanged but for the
# address: it binds 127.0.0.1 port 0 and prints "listening on ADDR".
import socket
import sys

recv_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
recv_socket.bind(('127.0.0.1', 0))  # 注意入参是一个元组
print("listening on 127.0.0.1:%d" % recv_socket.getsockname()[1], file=sys.stderr, flush=True)
while True:
    recv_data, addr = recv_socket.recvfrom(1024)  # 返回值是一个元组类型,系列解包赋值
    recv_string = recv_data.decode('UTF-8')
    print('客户说:', recv_string, flush=True)
    print('客户地址:', addr, flush=True)
    if recv_string == 'bye':
        print('服务器端即将推出', flush=True)
        break
    # 服务器端回复客户端数据
    data = input('回复什么给客户端:')
    recv_socket.sendto(data.encode('UTF-8'), addr)  # 注意udp发送数据接口为sendto,参数2为addr
recv_socket.close()
