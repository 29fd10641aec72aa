# The notes' UDP customer (004 p171), unchanged but for the address, taken
# from argv: python3 lesson10_udp_customer.py HOST PORT
import socket
import sys

send_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
while True:
    data = input('客户说:')
    send_socket.sendto(data.encode('UTF-8'), (sys.argv[1], int(sys.argv[2])))
    if data == 'bye':
        print('客户端发起结束', flush=True)
        break
    recv_data, addr = send_socket.recvfrom(1024)
    print('客户端接收数据:', recv_data.decode('UTF-8'), flush=True)
    print('服务器端地址:', addr, flush=True)
send_socket.close()
