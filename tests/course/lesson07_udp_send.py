# The notes' UDP sender (001 §2.2 / §3.1.1), unchanged but for the address:
# host and port come from argv instead of ('192.168.1.15', 8090).
from socket import *
import sys

# 创建一个UDP协议的套接字，然后发送一条数据到网络上的另一个进程
# 1.创建套接字
client_socket = socket(AF_INET, SOCK_DGRAM)

# 2.定义一个接收信息的目标
server_host_port = (sys.argv[1], int(sys.argv[2]))

# 3.准备数据，数据一定是字节数据
# encode表示按照一种编码格式把数据编程字节数组bytes
datas = input('请输入数据：').encode('utf-8')

# 4.发送数据
client_socket.sendto(datas, server_host_port)
print('发送完成')

# 5.关闭套接字，释放系统资源
client_socket.close()
