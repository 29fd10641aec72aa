# The notes' UDP echo client (001 §3.1.3), unchanged but for the address (argv
# instead of ('192.168.1.15', 8090)) and a timeout, so that a test can never hang
# in recvfrom if a reply is lost.
from socket import *
import sys

# 客户端可以发送多条数据
# 客户端如果发送一个'exit'则客户端退出
# 服务器端收到什么就返回什么

# 创建一个UDP协议的套接字，然后发送一条数据到网络上的另一个进程
# 1.创建套接字
client_socket = socket(AF_INET, SOCK_DGRAM)
client_socket.settimeout(20)


while True:
    # 2.定义一个接收信息的目标
    server_host_port = (sys.argv[1], int(sys.argv[2]))

    # 3.准备数据，数据一定是字节数据
    # encode表示按照一种编码格式把数据编程字节数组bytes
    datas = input('请输入数据：').encode('utf-8')

    # 4.发送数据
    client_socket.sendto(datas, server_host_port)



    # 5.一定可以从服务器接收到返回过来的数据，接收并打印
    print('返回的数据是:', client_socket.recvfrom(1024)[0].decode('utf-8'))
    if datas.decode('utf-8') == 'exit':
        break

# 6.关闭套接字，释放资源
client_socket.close()
